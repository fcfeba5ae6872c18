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

from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback

from .session import SessionCallback

__all__ = ["SentryCamCallback"]


class SentryCamCallback(SessionCallback, Callback):
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
        ``early_every=N`` also runs the early alerts every N optimiser steps;
        ``worker="process"`` projects in a child process instead of a thread of the training
        process (no shared GIL; alerts, and so ``stop_on_alert``, come a little later).

    Attributes
    ----------
    monitor
        The :class:`~sentrycam_widget.monitor.Monitor` on rank 0 once training started (display
        it in a notebook to watch), None before and on other ranks.
    """

    _validated_epoch: int | None = None  # the last epoch recorded at on_validation_end

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.session.start(pl_module, trainer.global_rank)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        self.session.optimiser_step(trainer.global_step, trainer.current_epoch)
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
