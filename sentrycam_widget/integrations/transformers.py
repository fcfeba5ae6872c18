"""``SentryCamTrainerCallback``: record and project a Hugging Face ``Trainer``'s run.

Checkpoints are taken in ``on_evaluate``, once ``eval_loss`` is known, or at ``on_epoch_end``
when no evaluation follows that epoch; with ``every_n_steps`` also after every n-th optimiser
step. Each records ``epoch`` (``state.epoch``, rounded down to the epoch in progress),
``step`` (``state.global_step``) and the evaluation's numeric metrics.

The probe runs through the model's own forward (``model(input_ids)`` for a tensor probe); a
``ModelOutput``'s ``logits`` are the logits. Under DDP only the world-process-zero records
(``state.is_world_process_zero``), through the unwrapped model; ``stop_on_alert`` sets
``control.should_training_stop`` on every process together (``torch.distributed`` broadcast).
The callback's ``state_dict`` carries the run directory for ``resume``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import IntervalStrategy

from ..errors import InputError
from .session import SessionCallback

__all__ = ["SentryCamTrainerCallback"]

# The Trainer's timing figures among the evaluation metrics: not stored as scalars.
_TIMINGS = ("_runtime", "_samples_per_second", "_steps_per_second")


class SentryCamTrainerCallback(SessionCallback, TrainerCallback):
    """Watch a Hugging Face run in SentryCam: ``Trainer(..., callbacks=[SentryCamTrainerCallback(probe)])``.

    Parameters
    ----------
    probe, layer, head, methods, run_dir, on_alert
        As for :class:`~sentrycam_widget.monitor.Monitor` (the default layer is the input of
        the model's last ``nn.Linear``, e.g. a classifier's pooled features).
    every_n_epochs
        Record every n-th epoch.
    every_n_steps
        Also record every n-th optimiser step (None: per evaluation / epoch only).
    stop_on_alert
        Stop training (on every process) after the first alert.
    sharded
        For FSDP / sharded models: every process forwards its slice of the probe.
    resume
        Continue the run already in ``run_dir``.
    display
        Show the widget under the running cell when training starts (watch it live).
    **monitor_options
        Further :class:`~sentrycam_widget.monitor.Monitor` keywords (``class_names``, ...).
        ``early_every=N`` also runs the early alerts every N optimiser steps;
        ``worker="process"`` projects in a child process instead of a thread of the training
        process (no shared GIL; alerts, and so ``stop_on_alert``, come a little later).
    """

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: torch.nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        if model is None:
            raise InputError("the Trainer passed no model to SentryCamTrainerCallback")
        self.session.start(model, 0 if state.is_world_process_zero else max(1, args.process_index))

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.session.optimiser_step(state.global_step, _epoch_in_progress(state))
        if self.session.step_due(state.global_step) and not control.should_evaluate:
            self._record(state, control, {})

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        evaluates = control.should_evaluate or args.eval_strategy == IntervalStrategy.EPOCH
        if not evaluates and self.session.epoch_due(_epoch_in_progress(state)):
            self._record(state, control, {})

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.session.epoch_due(_epoch_in_progress(state)):
            self._record(state, control, metrics or {})

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.session.close()

    def state_dict(self) -> dict[str, Any]:
        """``{"run_dir", "last_step"}`` of this run (see ``load_state_dict``)."""
        return self.session.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the run directory of an earlier :meth:`state_dict`."""
        self.session.load_state_dict(state)

    def _record(
        self, state: TrainerState, control: TrainerControl, metrics: dict[str, Any]
    ) -> None:
        measured = {k: v for k, v in metrics.items() if not k.endswith(_TIMINGS)}
        self.session.checkpoint(_epoch_in_progress(state), state.global_step, measured, "eval_loss")
        if self.session.should_stop():
            control.should_training_stop = True


def _epoch_in_progress(state: TrainerState) -> int:
    """``state.epoch`` (a float: 1.0 at the end of the first epoch) as the 0-based epoch index."""
    epoch = float(state.epoch or 0.0)
    return max(0, math.ceil(epoch - 1e-9) - 1)
