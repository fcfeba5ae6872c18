"""The streaming alert engine: signals per checkpoint, triggers, and the combined alert.

:class:`AlertEngine` keeps its own history, so a worker calls ``update`` once per checkpoint;
``run`` replays a recorded run for the audit. Every alert is an
:class:`~sentrycam_widget.records.Alert` (``checkpoint``, ``epoch``, ``signal``, ``trigger``,
``value``, ``threshold``, ``level`` = the signal's value, and a one-line ``explanation``);
``Alert.to_dict`` is its stored JSON form. The engine does not log: whoever delivers the
alerts (the monitor's worker, the audit CLI) logs them once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..checks import check_increasing
from ..errors import InputError
from ..metrics import eval_indices
from ..records import Alert, Checkpoint, Frame
from .catalogue import SIGNALS, SignalSpec
from .rules import Firing, ReferenceRule, RobustRule
from .signals import (
    dead_unit_fraction,
    effective_rank,
    fisher_ratio,
    inter_class_distance,
    intra_class_variance,
    linear_cka,
    nc1,
)


class AlertEngine:
    """Streaming alerts for one run: call :meth:`update` once per checkpoint, in order.

    Feature-space signals use the fixed subsample of :func:`~sentrycam_widget.metrics.eval_indices`
    (``eval_size`` points); 2-D signals use all points of the frame (pass the frame of the
    method whose layout should be audited, or ``None`` for feature-space signals only).
    Parameters
    ----------
    eval_size
        Points of the fixed subsample the feature-space signals use.
    seed
        Seed of that subsample.
    dead_units
        Compute the dead-unit signal; None decides from the first checkpoint (only when its
        features are all >= 0, a ReLU-like layer).
    reference, robust
        The paper's trigger and the robust z-score trigger (defaults when None).
    agreement, agreement_window
        How many signal families must fire within how many checkpoints for ``combined``.
    """

    def __init__(
        self,
        *,
        eval_size: int = 2000,
        seed: int = 0,
        dead_units: bool | None = None,
        reference: ReferenceRule | None = None,
        robust: RobustRule | None = None,
        agreement: int = 2,
        agreement_window: int = 3,
    ) -> None:
        if agreement < 2 or agreement_window < 1:
            raise InputError(
                f"the combined alert needs agreement >= 2 signals within a window >= 1, got "
                f"agreement={agreement}, agreement_window={agreement_window}"
            )
        self.eval_size, self.seed, self.dead_units = eval_size, seed, dead_units
        self.reference = reference or ReferenceRule()
        self.robust = robust or RobustRule()
        self.agreement, self.agreement_window = agreement, agreement_window
        self.alerts: list[Alert] = []
        self.records: list[dict[str, Any]] = []
        self._history: dict[str, list[float]] = {name: [] for name in SIGNALS}
        self._family_hits: list[tuple[int, str, str]] = []  # (position, family, signal)
        self._previous_sample: np.ndarray | None = None
        self._n_points: int | None = None

    def update(self, checkpoint: Checkpoint, frame: Frame | None = None) -> list[Alert]:
        """Compute this checkpoint's signals, run the triggers, return (and keep) new alerts.

        Parameters
        ----------
        checkpoint
            The next checkpoint (indices increasing).
        frame
            Its frame of the audited method, for the 2-D signals (None: feature space only).

        Returns
        -------
        list of Alert
            The alerts raised at this checkpoint.
        """
        self._check_order(checkpoint, frame)
        values = self._signals(checkpoint, frame)
        self.records.append({"checkpoint": checkpoint.index, "epoch": checkpoint.epoch, **values})
        position = len(self.records) - 1
        new: list[Alert] = []
        for name, value in values.items():
            self._history[name].append(value)
            alert = self._trigger(SIGNALS[name], checkpoint)
            if alert is not None:
                new.append(alert)
                if SIGNALS[name].family is not None:
                    self._family_hits.append((position, SIGNALS[name].family, name))
        combined = self._combined(checkpoint, position, new)
        if combined is not None:
            new.append(combined)
        self.alerts.extend(new)
        return new

    def run(
        self, checkpoints: Sequence[Checkpoint], frames: Sequence[Frame | None] | None = None
    ) -> list[Alert]:
        """Feed a recorded run through :meth:`update`.

        Parameters
        ----------
        checkpoints
            The run's checkpoints, in order.
        frames
            One frame (or None) per checkpoint, or None for feature-space signals only.

        Returns
        -------
        list of Alert
            Every new alert.
        """
        if frames is not None and len(frames) != len(checkpoints):
            raise InputError(
                f"got {len(checkpoints)} checkpoints but {len(frames)} frames; pass one frame "
                "(or None) per checkpoint"
            )
        new: list[Alert] = []
        for i, checkpoint in enumerate(checkpoints):
            new.extend(self.update(checkpoint, None if frames is None else frames[i]))
        return new

    def _check_order(self, checkpoint: Checkpoint, frame: Frame | None) -> None:
        check_increasing(checkpoint.index, self.records[-1]["checkpoint"] if self.records else None)
        if self._n_points is not None and checkpoint.n_points != self._n_points:
            raise InputError(
                f"the probe set changed size ({self._n_points} -> {checkpoint.n_points} points "
                f"at checkpoint {checkpoint.index}); alerts need the same probe points throughout"
            )
        if frame is not None and (
            frame.index != checkpoint.index or frame.embedding.shape[0] != checkpoint.n_points
        ):
            raise InputError(
                f"frame {frame.method!r} #{frame.index} with {frame.embedding.shape[0]} points "
                f"does not belong to checkpoint {checkpoint.index} ({checkpoint.n_points} points)"
            )

    def _signals(self, checkpoint: Checkpoint, frame: Frame | None) -> dict[str, float]:
        self._n_points = checkpoint.n_points
        idx = eval_indices(checkpoint.n_points, self.eval_size, self.seed)
        sample = checkpoint.features[idx].astype(np.float64)
        labels = checkpoint.labels[idx]
        if self.dead_units is None:
            self.dead_units = bool(checkpoint.features.min() >= 0)
        out: dict[str, float] = {}
        val_loss = checkpoint.scalars.get("val_loss")
        if val_loss is not None:
            out["val_loss"] = float(val_loss)
        if frame is not None and np.isfinite(frame.embedding).all():
            out["intra_class_variance_2d"] = intra_class_variance(
                frame.embedding, checkpoint.labels
            )
            out["inter_class_distance_2d"] = inter_class_distance(
                frame.embedding, checkpoint.labels
            )
            out["between_within_2d"] = fisher_ratio(frame.embedding, checkpoint.labels)
        if np.unique(labels).size >= 2:
            out["fisher_ratio"] = fisher_ratio(sample, labels)
            out["nc1"] = nc1(sample, labels)
        out["effective_rank"] = effective_rank(sample)
        if self._previous_sample is not None:
            out["cka_prev"] = linear_cka(self._previous_sample, sample)
        if self.dead_units:
            out["dead_fraction"] = dead_unit_fraction(sample)
        self._previous_sample = sample
        return {name: value for name, value in out.items() if np.isfinite(value)}

    def _trigger(self, spec: SignalSpec, checkpoint: Checkpoint) -> Alert | None:
        history = self._history[spec.name]
        if spec.trigger == "reference":
            firing = self.reference.check(history, spec.higher_is_bad)
        else:
            firing = self.robust.check(history, spec.higher_is_bad, spec.abs_floor)
        if firing is None:
            return None
        return _alert(
            checkpoint,
            spec.name,
            spec.trigger,
            firing,
            history[-1],
            f"{spec.description} {firing.reason}",
        )

    def _combined(self, checkpoint: Checkpoint, position: int, new: list[Alert]) -> Alert | None:
        if not any(SIGNALS[a.signal].family is not None for a in new):
            return None
        recent = [hit for hit in self._family_hits if hit[0] > position - self.agreement_window]
        families: dict[str, str] = {}
        for _, family, signal in recent:
            families.setdefault(family, signal)
        if len(families) < self.agreement:
            return None
        agreeing = ", ".join(f"{signal} ({family})" for family, signal in sorted(families.items()))
        firing = Firing(
            float(len(families)),
            float(self.agreement),
            f"{len(families)} independent signals agree within {self.agreement_window} "
            f"checkpoints: {agreeing}",
        )
        return _alert(checkpoint, "combined", "agreement", firing, None, firing.reason)


def _alert(
    checkpoint: Checkpoint,
    signal: str,
    trigger: str,
    firing: Firing,
    level: float | None,
    explanation: str,
) -> Alert:
    return Alert(
        checkpoint=int(checkpoint.index),
        epoch=int(checkpoint.epoch),
        signal=signal,
        trigger=trigger,
        value=float(firing.value),
        threshold=float(firing.threshold),
        level=None if level is None else float(level),
        explanation=f"epoch {checkpoint.epoch}: {explanation}",
        step=checkpoint.step,
    )
