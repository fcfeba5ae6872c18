"""Rank-zero recording under ``torch.distributed``: one run directory, one projecting monitor.

A :class:`~sentrycam_widget.monitor.Monitor` created on every rank of a DDP job would write one
run directory per rank. :class:`DistributedMonitor` creates the monitor on rank 0 only; on the
other ranks ``checkpoint`` returns at once, so no rank ever waits for rank 0's projection (that
runs on rank 0's background worker). Rank 0 captures through the *unwrapped* module
(``DistributedDataParallel.module``): a DDP forward on one rank alone would start collectives
(buffer broadcast) that the other ranks never join.

``sharded=True`` is for models whose forward is itself collective (FSDP, tensor-parallel):
every rank must call ``checkpoint`` together; each forwards its slice of the probe through the
wrapped model (slices padded to equal length so every rank runs the same number of forwards),
the head is copied inside its own forward (where sharded parameters are whole) and rank 0
gathers the slices into one checkpoint.

``stop_on_alert=True`` makes :meth:`DistributedMonitor.should_stop` a collective: rank 0's
decision (an alert has been raised) is broadcast, so every rank stops at the same step.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..capture import Recorder, forward_probe
from ..errors import InputError
from ..monitor import AlertCallback, Monitor
from ..probe import ProbeSet
from ..records import Checkpoint, Head

Broadcast = Callable[[Any], Any]

__all__ = ["DistributedMonitor", "process_rank", "unwrap_model", "world_size"]


def process_rank() -> int:
    """This process's global rank: from ``torch.distributed`` once initialised, else ``$RANK``.

    Returns
    -------
    int
        0 in a single-process run.
    """
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Number of processes: from ``torch.distributed`` once initialised, else ``$WORLD_SIZE``.

    Returns
    -------
    int
        1 in a single-process run.
    """
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size())
    return int(os.environ.get("WORLD_SIZE", "1"))


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module a DDP / DataParallel wrapper runs (``.module``), unwrapped repeatedly.

    Parameters
    ----------
    model
        A module, possibly wrapped.

    Returns
    -------
    torch.nn.Module
        The innermost wrapped module (``model`` itself when it is not a wrapper).
    """
    wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    while isinstance(model, wrappers):
        model = model.module
    return model


class DistributedMonitor:
    """A :class:`Monitor` on rank 0 and a no-op elsewhere, with the same ``checkpoint`` call.

    Parameters
    ----------
    model
        The model being trained; DDP / DataParallel wrappers are unwrapped for capture.
    probe, layer, head, methods, run_dir, on_alert
        As for :class:`Monitor` (``methods=()`` records without projecting).
    stop_on_alert
        :meth:`should_stop` returns True on every rank once rank 0 has raised an alert.
    sharded
        Every rank forwards its slice of the probe through ``model`` itself (module doc).
    resume
        Continue the run already in ``run_dir`` (see :class:`Monitor`).
    rank
        This process's rank (default :func:`process_rank`).
    **monitor_options
        Further keyword arguments of :class:`Monitor` (``device``, ``class_names``, ...).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        probe: Any,
        layer: str | torch.nn.Module | None = None,
        head: Any = None,
        methods: Sequence[str] = ("sentrycam",),
        run_dir: str | os.PathLike[str] | None = None,
        on_alert: AlertCallback | None = None,
        *,
        stop_on_alert: bool = False,
        sharded: bool = False,
        resume: bool = False,
        rank: int | None = None,
        **monitor_options: Any,
    ) -> None:
        if on_alert is not None and not callable(on_alert):
            raise InputError("on_alert must be callable(alert_dict)")
        self.rank = process_rank() if rank is None else int(rank)
        self.stop_on_alert = bool(stop_on_alert)
        self.sharded = bool(sharded)
        self._model = model
        self._user_on_alert = on_alert
        self._alerted = False
        self.monitor: Monitor | None = None
        self._recorder: Recorder | None = None
        if self.sharded:
            self._recorder = Recorder(
                unwrap_model(model), ProbeSet.from_any(probe), layer=layer, head=head
            )
        if self.rank == 0:
            self.monitor = Monitor(
                unwrap_model(model),
                probe,
                layer=layer,
                head=head,
                methods=methods,
                run_dir=run_dir,
                on_alert=self._alert,
                resume=resume,
                **monitor_options,
            )

    @property
    def is_recorder(self) -> bool:
        """True on the one rank that records (rank 0)."""
        return self.monitor is not None

    @property
    def run_dir(self) -> str | None:
        """Rank 0's run directory, absolute, or its URL (None on other ranks)."""
        if self.monitor is None:
            return None
        path = self.monitor.store.path
        return str(path.resolve()) if isinstance(path, Path) else path

    def checkpoint(
        self,
        epoch: int | None = None,
        *,
        step: int | None = None,
        val_loss: float | None = None,
        **scalars: float,
    ) -> int | None:
        """Record a checkpoint on rank 0 (every rank calls it; only sharded mode is collective).

        Parameters
        ----------
        epoch, step, val_loss, **scalars
            As for :meth:`Monitor.checkpoint`.

        Returns
        -------
        int or None
            The checkpoint's index on rank 0, None on the other ranks.
        """
        if self.sharded:
            return self._sharded_checkpoint(epoch, step, val_loss, scalars)
        if self.monitor is None:
            return None
        return self.monitor.checkpoint(epoch, step=step, val_loss=val_loss, **scalars)

    def should_stop(self, broadcast: Broadcast | None = None) -> bool:
        """Whether training should stop because of an alert; the same answer on every rank.

        Parameters
        ----------
        broadcast
            ``broadcast(value) -> value`` from rank 0 (e.g. Lightning's
            ``trainer.strategy.broadcast``); default ``torch.distributed.broadcast_object_list``
            when a process group is initialised.

        Returns
        -------
        bool
            False whenever ``stop_on_alert`` is off (then no collective runs).
        """
        if not self.stop_on_alert:
            return False
        decision = self._alerted if self.rank == 0 else False
        if broadcast is not None:
            return bool(broadcast(decision))
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            box = [decision]
            dist.broadcast_object_list(box, src=0)
            return bool(box[0])
        return decision

    def flush(self) -> None:
        """Wait for rank 0's worker to project everything captured (no-op on other ranks)."""
        if self.monitor is not None:
            self.monitor.flush()

    def close(self) -> None:
        """Close rank 0's monitor (raises its worker's failure, if any)."""
        if self.monitor is not None:
            self.monitor.close()

    def _alert(self, alert: dict[str, Any]) -> None:
        self._alerted = True
        if self._user_on_alert is not None:
            self._user_on_alert(alert)

    def _sharded_checkpoint(
        self,
        epoch: int | None,
        step: int | None,
        val_loss: float | None,
        scalars: dict[str, float],
    ) -> int | None:
        assert self._recorder is not None
        features, logits, head = _forward_slice(self._recorder, self._model, self.rank)
        parts = _gather_to_zero((features, logits, head), self.rank)
        if self.monitor is None:
            return None
        labels = self._recorder.probe.labels
        all_features = np.concatenate([p[0] for p in parts])
        all_logits = np.concatenate([p[1] for p in parts])
        head_copy = next(p[2] for p in parts if p[2] is not None)

        def capture(
            *, index: int, epoch: int, step: int | None, scalars: dict[str, float]
        ) -> Checkpoint:
            return Checkpoint(
                index=index,
                epoch=epoch,
                step=step,
                features=all_features,
                labels=labels,
                logits=all_logits,
                head=head_copy,
                scalars=scalars,
            )

        return self.monitor._record(capture, epoch, step=step, val_loss=val_loss, **scalars)


def _forward_slice(
    recorder: Recorder, model: torch.nn.Module, rank: int
) -> tuple[np.ndarray, np.ndarray, Head | None]:
    """This rank's probe slice through the (collective) model; rank 0 also copies the head."""
    n_ranks = world_size()
    n = recorder.probe.n_points
    bounds = np.linspace(0, n, n_ranks + 1).round().astype(int)
    start, stop = int(bounds[rank]), int(bounds[rank + 1])
    longest = int(np.diff(bounds).max())
    rows = torch.arange(start, stop)
    # Slices are padded (with their last row, or row 0 for an empty slice) to equal length.
    fill = rows[-1:] if rows.numel() else torch.zeros(1, dtype=torch.long)
    padded = torch.cat([rows, fill.expand(longest - rows.numel())])
    head_box: list[Head] = []
    handle = None
    source = recorder.head_module()
    if rank == 0 and source is None:
        head_box.append(recorder.copy_head())
    elif rank == 0:

        def copy_head(_module: torch.nn.Module, _args: Any, _output: Any) -> None:
            if not head_box:
                head_box.append(recorder.copy_head())

        # prepend: run before FSDP's own post-forward hook reshards the parameters again
        handle = source.register_forward_hook(copy_head, prepend=True)
    try:
        features, logits = forward_probe(
            model,
            recorder.probe.inputs[padded],
            recorder.layer_module,
            recorder.use_input,
            recorder.layer_name,
            recorder.batch_size,
        )
    finally:
        if handle is not None:
            handle.remove()
    kept = stop - start
    return features[:kept], logits[:kept], (head_box[0] if head_box else None)


def _gather_to_zero(part: Any, rank: int) -> list[Any]:
    """Every rank's ``part`` on rank 0, in rank order (an empty list elsewhere)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [part]
    gathered: list[Any] | None = [None] * dist.get_world_size() if rank == 0 else None
    dist.gather_object(part, gathered, dst=0)
    return list(gathered or [])
