"""What the training callbacks share: when to checkpoint, and what survives a restart.

A :class:`CallbackSession` holds a callback's monitor arguments until the trainer has a model
and a rank, then starts a :class:`~sentrycam_widget.integrations.distributed.DistributedMonitor`
(rank 0 records, other ranks no-op). It decides which epochs and steps are due
(``every_n_epochs`` as Lightning's ``ModelCheckpoint`` counts them: epoch ``e`` is due when
``(e + 1) % every_n_epochs == 0``; step ``s`` when ``s % every_n_steps == 0``), never records
the same global step twice, and its ``state_dict`` carries the run directory so that a trainer
restored from its own checkpoint continues the same run (``resume``).
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..errors import InputError, WorkerError
from ..monitor import AlertCallback
from .distributed import Broadcast, DistributedMonitor

log = logging.getLogger("sentrycam_widget")


class CallbackSession:
    """The framework-neutral half of ``SentryCamCallback`` and ``SentryCamTrainerCallback``.

    Parameters
    ----------
    probe, layer, head, methods, run_dir, on_alert
        As for :class:`~sentrycam_widget.monitor.Monitor`.
    every_n_epochs
        Record every n-th epoch (>= 1).
    every_n_steps
        Also record every n-th optimiser step (None: epochs only).
    stop_on_alert, sharded, resume, monitor_options
        As for :class:`DistributedMonitor`.
    display
        Show rank 0's widget (IPython ``display``) when training starts, to watch it live.
    """

    def __init__(
        self,
        probe: Any,
        layer: str | torch.nn.Module | None,
        head: Any,
        methods: Sequence[str],
        run_dir: str | os.PathLike[str] | None,
        on_alert: AlertCallback | None,
        *,
        every_n_epochs: int,
        every_n_steps: int | None,
        stop_on_alert: bool,
        sharded: bool,
        resume: bool,
        display: bool,
        monitor_options: dict[str, Any],
    ) -> None:
        self.every_n_epochs = _positive("every_n_epochs", every_n_epochs)
        self.every_n_steps = (
            None if every_n_steps is None else _positive("every_n_steps", every_n_steps)
        )
        self._arguments = {
            "probe": probe,
            "layer": layer,
            "head": head,
            "methods": methods,
            "on_alert": on_alert,
            "stop_on_alert": stop_on_alert,
            "sharded": sharded,
            **monitor_options,
        }
        self.run_dir = None if run_dir is None else str(run_dir)
        self.resume = bool(resume)
        self.display = bool(display)
        self.monitor: DistributedMonitor | None = None
        self._last_step: int | None = None
        self._early = monitor_options.get("early_every") is not None
        self._last_early_step: int | None = None
        self._closed = False

    @property
    def started(self) -> bool:
        """True between ``start`` and ``close``."""
        return self.monitor is not None and not self._closed

    def start(self, model: torch.nn.Module, rank: int) -> None:
        """Create the monitor for ``model`` on this ``rank`` (a later fit continues the run)."""
        if self.monitor is not None and not self._closed:
            return
        if self.monitor is not None:
            self.resume = True
        self._closed = False
        self.monitor = DistributedMonitor(
            model, run_dir=self.run_dir, resume=self.resume, rank=rank, **self._arguments
        )
        if self.monitor.run_dir is not None:
            self.run_dir = self.monitor.run_dir
        if self.display and self.monitor.monitor is not None:
            from IPython.display import display

            display(self.monitor.monitor)

    def epoch_due(self, epoch: int) -> bool:
        return (int(epoch) + 1) % self.every_n_epochs == 0

    def optimiser_step(self, step: int, epoch: int) -> None:
        """Hand each new optimiser step to rank 0's monitor when it runs early alerts.

        Only with ``early_every`` among the monitor options; a step already handed over
        (gradient accumulation repeats the global step) is skipped.
        """
        recorder = None if self.monitor is None else self.monitor.monitor
        if not self._early or recorder is None or self._closed:
            return
        if self._last_early_step is not None and step <= self._last_early_step:
            return
        self._last_early_step = step
        recorder.step(step, epoch)

    def step_due(self, step: int) -> bool:
        return self.every_n_steps is not None and step > 0 and step % self.every_n_steps == 0

    def checkpoint(
        self, epoch: int, step: int, metrics: Mapping[str, Any], val_loss_key: str
    ) -> None:
        """Record ``epoch``/``step`` with the numeric ``metrics`` as scalars (once per step)."""
        if not self.started or step == self._last_step:
            return
        self._last_step = step
        scalars = numeric_scalars(metrics)
        val_loss = scalars.pop(val_loss_key, None)
        for name in ("epoch", "step", "val_loss"):  # recorded as such, not as scalars
            scalars.pop(name, None)
        self.monitor.checkpoint(epoch, step=step, val_loss=val_loss, **scalars)

    def should_stop(self, broadcast: Broadcast | None = None) -> bool:
        return self.started and self.monitor.should_stop(broadcast)

    def close(self, *, training_failed: bool = False) -> None:
        """Drain and close the monitor (kept, closed, for viewing); idempotent.

        When training itself failed (``training_failed``), a worker failure is logged instead of
        raised, so the training error stays the one the user sees.
        """
        if not self.started:
            return
        self._closed = True
        try:
            self.monitor.close()
        except WorkerError:
            if not training_failed:
                raise
            log.exception("the sentrycam worker had failed too")

    def state_dict(self) -> dict[str, Any]:
        """``{"run_dir", "last_step"}``: enough to continue this run after a restart."""
        return {"run_dir": self.run_dir, "last_step": self._last_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the run directory recorded in ``state`` (from :meth:`state_dict`)."""
        if state.get("run_dir") is not None:
            self.run_dir = str(state["run_dir"])
            self.resume = True
        last = state.get("last_step")
        self._last_step = None if last is None else int(last)


class SessionCallback:
    """The trainer callbacks' shared front: their constructor and the session it builds.

    ``SentryCamCallback`` and ``SentryCamTrainerCallback`` put it before their framework's
    callback class; their own docstrings list the parameters (those of :class:`CallbackSession`
    with ``monitor_options`` as keywords).
    """

    def __init__(
        self,
        probe: Any,
        layer: str | torch.nn.Module | None = None,
        head: Any = None,
        methods: Sequence[str] = ("sentrycam",),
        run_dir: str | os.PathLike[str] | None = None,
        on_alert: AlertCallback | None = None,
        *,
        every_n_epochs: int = 1,
        every_n_steps: int | None = None,
        stop_on_alert: bool = False,
        sharded: bool = False,
        resume: bool = False,
        display: bool = False,
        **monitor_options: Any,
    ) -> None:
        super().__init__()
        self.session = CallbackSession(
            probe,
            layer,
            head,
            methods,
            run_dir,
            on_alert,
            every_n_epochs=every_n_epochs,
            every_n_steps=every_n_steps,
            stop_on_alert=stop_on_alert,
            sharded=sharded,
            resume=resume,
            display=display,
            monitor_options=monitor_options,
        )

    @property
    def monitor(self) -> Any:
        """Rank 0's :class:`~sentrycam_widget.monitor.Monitor` (None elsewhere / before fit)."""
        distributed = self.session.monitor
        return None if distributed is None else distributed.monitor

    @property
    def run_dir(self) -> str | None:
        """The run directory (known on rank 0 once training started, or from a restore)."""
        return self.session.run_dir


def numeric_scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite real numbers (and one-element tensors) of ``metrics``, as floats."""
    scalars = {}
    for name, value in metrics.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.detach().float().cpu().item()
        real = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if real and math.isfinite(float(value)):
            scalars[str(name)] = float(value)
    return scalars


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
