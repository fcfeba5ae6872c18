"""``SentryCamCallback``: record and project a Lightning ``Trainer``'s run (``lightning.pytorch``).

Checkpoints are taken where Lightning's own ``EarlyStopping`` and ``ModelCheckpoint`` act: at
``on_validation_end``, once the epoch's ``val_loss`` is in ``trainer.callback_metrics`` (never
during the sanity check), or at ``on_train_epoch_end`` for epochs without validation; with
``every_n_steps`` also after every n-th optimiser step. Each records ``epoch``
(``trainer.current_epoch``), ``step`` (``trainer.global_step``) and every scalar metric logged.

Under DDP (``strategy="ddp"``) only global rank 0 records, through the LightningModule itself
(not the DDP wrapper); the other ranks do nothing. ``stop_on_alert`` sets
``trainer.should_stop`` on every rank together (``trainer.strategy.broadcast``). The callback's
``state_dict`` carries the run directory, so ``trainer.fit(..., ckpt_path=...)`` continues the
same run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback

from ..monitor import AlertCallback
from .session import CallbackSession

__all__ = ["SentryCamCallback"]


class SentryCamCallback(Callback):
    """Watch a Lightning run in SentryCam: ``Trainer(callbacks=[SentryCamCallback(probe)])``.

    Parameters
    ----------
    probe, layer, head, methods, run_dir, on_alert
        As for :class:`~sentrycam_widget.monitor.Monitor`; ``methods=()`` records without
        projecting (cluster jobs, ``ddp_notebook`` whose ranks cannot reach the kernel's widget).
    every_n_epochs
        Record every n-th epoch.
    every_n_steps
        Also record every n-th optimiser step (None: per epoch only).
    stop_on_alert
        Stop training (on every rank) after the first alert.
    sharded
        For FSDP / sharded models: every rank forwards its slice of the probe.
    resume
        Continue the run already in ``run_dir``.
    display
        Show the widget under the running cell when training starts (watch it live).
    **monitor_options
        Further :class:`~sentrycam_widget.monitor.Monitor` keywords (``class_names``, ...).

    Attributes
    ----------
    monitor
        The :class:`~sentrycam_widget.monitor.Monitor` on rank 0 once training started (display
        it in a notebook to watch), None before and on other ranks.
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
        self._validated_epoch: int | None = None

    @property
    def monitor(self) -> Any:
        """Rank 0's :class:`~sentrycam_widget.monitor.Monitor` (None elsewhere / before fit)."""
        distributed = self.session.monitor
        return None if distributed is None else distributed.monitor

    @property
    def run_dir(self) -> str | None:
        """The run directory (known on rank 0 once training started, or from a restore)."""
        return self.session.run_dir

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.session.start(pl_module, trainer.global_rank)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        if self.session.step_due(trainer.global_step):
            self._record(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not self.session.started:
            return
        self._validated_epoch = trainer.current_epoch
        if self.session.epoch_due(trainer.current_epoch):
            self._record(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch = trainer.current_epoch
        if self._validated_epoch != epoch and self.session.epoch_due(epoch):
            self._record(trainer)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.session.close()

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        self.session.close(training_failed=True)

    def state_dict(self) -> dict[str, Any]:
        return self.session.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.session.load_state_dict(state_dict)

    def _record(self, trainer: Trainer) -> None:
        self.session.checkpoint(
            trainer.current_epoch, trainer.global_step, trainer.callback_metrics, "val_loss"
        )
        if self.session.should_stop(trainer.strategy.broadcast):
            trainer.should_stop = True
