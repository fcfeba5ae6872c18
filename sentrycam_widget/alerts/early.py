"""Early warnings at a finer cadence than projection: feature-space signals every few steps.

:class:`EarlyWatch` takes the probe set's features (and, when there are labels, the logits under
the current head) as often as the caller likes — e.g. every 5 optimiser steps, while frames are
projected once per epoch — and watches signals that need nothing else:

- label-free (self-supervised runs too): ``drift`` (1 − linear CKA to the previous look),
  ``feature_norm``, ``effective_rank`` and ``dead_fraction`` (ReLU-like layers);
- with labels: ``probe_accuracy``, ``margin`` (the head's mean softmax margin of the true
  class, which falls while the head starts hedging, before the argmax flips; same family as
  the accuracy) and ``fisher_ratio``, and per class ``class_accuracy`` ("class 3 is being
  forgotten"), which a single validation loss cannot show.

Each signal has a :class:`~.rules.TrendRule` (a sustained move from its best smoothed level,
after a warm-up). An alert is raised when a signal starts firing (not again while it keeps
firing), and ``early_combined`` when signals of at least two families have started firing
within ``agreement_window`` looks. Alerts are :class:`~sentrycam_widget.records.Alert`
records with their ``step``. Rules and windows were chosen on held-out seeds of the scenario
suite (:mod:`sentrycam_widget.benchmarking.alert_scenarios`,
:data:`~sentrycam_widget.benchmarking.early_alerts.HELD_OUT`); its reported runs use other seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..metrics import eval_indices
from ..records import Alert
from .rules import TrendRule
from .signals import (
    class_accuracies,
    dead_unit_fraction,
    effective_rank,
    feature_norm,
    fisher_ratio,
    linear_cka,
    prediction_margin,
)


@dataclass(frozen=True)
class EarlySignal:
    """One step-cadence signal: bad direction, family for agreement, and its trigger."""

    name: str
    description: str
    higher_is_bad: bool | None  # None: both ways are bad (collapse or blow-up)
    family: str
    rule: TrendRule


EARLY_SIGNALS: dict[str, EarlySignal] = {
    s.name: s
    for s in (
        EarlySignal("drift", "drift (1 - CKA to the previous look)", True, "drift", TrendRule()),
        EarlySignal("feature_norm", "feature norm", None, "scale", TrendRule(min_gap=0.5)),
        EarlySignal("effective_rank", "effective rank", None, "rank", TrendRule(min_gap=0.15)),
        EarlySignal(
            "dead_fraction",
            "dead-unit fraction",
            True,
            "dead_units",
            TrendRule(min_gap=0.1, log=False),
        ),
        EarlySignal(
            "probe_accuracy",
            "probe accuracy",
            False,
            "accuracy",
            TrendRule(min_gap=0.03, log=False),
        ),
        EarlySignal("fisher_ratio", "Fisher ratio", False, "separation", TrendRule(min_gap=0.15)),
        EarlySignal(
            "margin", "probe margin", False, "accuracy", TrendRule(min_gap=0.05, log=False)
        ),
    )
}
CLASS_RULE = TrendRule(min_gap=0.3, log=False)


class EarlyWatch:
    """Step-cadence alerts for one run: call :meth:`update` with each look, in step order.

    Parameters
    ----------
    eval_size, seed
        The fixed probe subsample the signals use (:func:`~..metrics.eval_indices`).
    signals
        Which of :data:`EARLY_SIGNALS` to watch (default: all that the inputs allow).
    agreement, agreement_window
        ``early_combined`` needs ``agreement`` families starting to fire within
        ``agreement_window`` looks.
    rules, class_rule
        Triggers replacing a signal's default (by name) and the per-class accuracy trigger.
    """

    def __init__(
        self,
        *,
        eval_size: int = 2000,
        seed: int = 0,
        signals: tuple[str, ...] | None = None,
        agreement: int = 2,
        agreement_window: int = 12,
        rules: dict[str, TrendRule] | None = None,
        class_rule: TrendRule = CLASS_RULE,
    ) -> None:
        unknown = sorted(set(signals or ()) - set(EARLY_SIGNALS))
        if unknown:
            raise InputError(f"unknown early signals {unknown}; known: {sorted(EARLY_SIGNALS)}")
        if agreement < 2 or agreement_window < 1:
            raise InputError(
                f"early_combined needs agreement >= 2 within a window >= 1 look, got "
                f"agreement={agreement}, agreement_window={agreement_window}"
            )
        self.eval_size, self.seed = eval_size, seed
        self.signals = tuple(signals or EARLY_SIGNALS)
        self.agreement, self.agreement_window = agreement, agreement_window
        self.rules, self.class_rule = dict(rules or {}), class_rule
        self.alerts: list[Alert] = []
        self.records: list[dict[str, Any]] = []
        self._history: dict[str, list[float]] = {}
        self._firing: set[str] = set()
        self._starts: list[tuple[int, str, str]] = []  # (look, family, signal)
        self._previous: np.ndarray | None = None
        self._relu: bool | None = None
        self._checkpoint = -1

    def update(
        self,
        features: np.ndarray,
        *,
        step: int,
        epoch: int,
        labels: np.ndarray | None = None,
        logits: np.ndarray | None = None,
        checkpoint: int | None = None,
    ) -> list[Alert]:
        """Compute this look's signals, run the triggers and return (and keep) new alerts.

        Parameters
        ----------
        features
            [N, D] probe features now (the same probe points at every look).
        step, epoch
            The optimiser step and epoch of this look (steps must increase).
        labels, logits
            [N] probe labels and [N, C] logits under the current head; both or neither.
        checkpoint
            Index of the last recorded checkpoint, stored in the alerts (default: the last
            one given, -1 before any).

        Returns
        -------
        list[Alert]
            Alerts that started at this look, ``early_combined`` last.
        """
        if (labels is None) != (logits is None):
            raise InputError("pass labels and logits together (or neither, for label-free runs)")
        values, classes = self._signals(np.asarray(features), labels, logits)
        return self.observe(values, step=step, epoch=epoch, classes=classes, checkpoint=checkpoint)

    def observe(
        self,
        values: dict[str, float],
        *,
        step: int,
        epoch: int,
        classes: dict[int, float] | None = None,
        checkpoint: int | None = None,
    ) -> list[Alert]:
        """Run the triggers on one look's signal values (what :meth:`update` computed).

        Replaying the ``records`` of a watched run through a new watch with other rules
        reproduces its alerts without the features.

        Parameters
        ----------
        values
            Signal name -> value, names from :data:`EARLY_SIGNALS`.
        step, epoch
            The optimiser step (increasing) and epoch of this look.
        classes
            Class -> probe accuracy under the current head, for per-class alerts.
        checkpoint
            Index of the last recorded checkpoint, stored in the alerts.

        Returns
        -------
        list[Alert]
            Alerts that started at this look, ``early_combined`` last.
        """
        if self.records and step <= self.records[-1]["step"]:
            raise InputError(f"steps must increase; got {step} after {self.records[-1]['step']}")
        unknown = sorted(set(values) - set(EARLY_SIGNALS))
        if unknown:
            raise InputError(f"unknown early signals {unknown}; known: {sorted(EARLY_SIGNALS)}")
        if checkpoint is not None:
            self._checkpoint = int(checkpoint)
        values = {k: float(v) for k, v in values.items() if k in self.signals}
        classes = {int(k): float(v) for k, v in (classes or {}).items()}
        self.records.append({"step": int(step), "epoch": int(epoch), **values, "classes": classes})
        look = len(self.records) - 1
        new: list[Alert] = []
        for name, value in values.items():
            spec = EARLY_SIGNALS[name]
            firing = self._follow(name, value, self.rules.get(name, spec.rule), spec.higher_is_bad)
            if firing is not None:
                new.append(self._alert(step, epoch, name, firing, value, spec.description))
                self._starts.append((look, spec.family, name))
        for label, accuracy in classes.items():
            firing = self._follow(f"class_accuracy:{label}", accuracy, self.class_rule, False)
            if firing is not None:
                text = f"class {label} is being forgotten: its probe accuracy"
                new.append(
                    self._alert(step, epoch, "class_accuracy", firing, accuracy, text, label)
                )
                self._starts.append((look, "accuracy", "class_accuracy"))
        combined = self._combined(look, step, epoch) if new else None
        if combined is not None:
            new.append(combined)
        self.alerts.extend(new)
        return new

    def _signals(
        self, features: np.ndarray, labels: np.ndarray | None, logits: np.ndarray | None
    ) -> tuple[dict[str, float], dict[int, float]]:
        idx = eval_indices(features.shape[0], self.eval_size, self.seed)
        sample = np.asarray(features[idx], dtype=np.float64)
        if self._previous is not None and self._previous.shape != sample.shape:
            raise InputError(
                f"the probe features changed shape ({self._previous.shape} -> {sample.shape}); "
                "early alerts need the same probe points and layer throughout"
            )
        if self._relu is None:
            self._relu = bool(sample.min() >= 0)
        out: dict[str, float] = {
            "feature_norm": feature_norm(sample),
            "effective_rank": effective_rank(sample),
        }
        if self._previous is not None:
            out["drift"] = 1.0 - linear_cka(self._previous, sample)
        if self._relu:
            out["dead_fraction"] = dead_unit_fraction(sample)
        classes: dict[int, float] = {}
        if labels is not None and logits is not None:
            sub_labels = np.asarray(labels)[idx]
            sub_logits = np.asarray(logits, dtype=np.float64)[idx]
            classes = class_accuracies(sub_logits, sub_labels)
            out["probe_accuracy"] = float(np.mean(sub_logits.argmax(axis=1) == sub_labels))
            out["margin"] = prediction_margin(sub_logits, sub_labels)
            if len(classes) >= 2:
                out["fisher_ratio"] = fisher_ratio(sample, sub_labels)
        self._previous = sample
        keep = {k: v for k, v in out.items() if k in self.signals and np.isfinite(v)}
        return keep, classes

    def _follow(self, key: str, value: float, rule: TrendRule, higher_is_bad: bool) -> Any:
        """Append ``value`` to ``key``'s history; the firing only when it starts firing."""
        history = self._history.setdefault(key, [])
        history.append(float(value))
        firing = rule.check(history, higher_is_bad)
        started = firing is not None and key not in self._firing
        if firing is None:
            self._firing.discard(key)
        else:
            self._firing.add(key)
        return firing if started else None

    def _alert(
        self,
        step: int,
        epoch: int,
        signal: str,
        firing: Any,
        level: float | None,
        description: str,
        class_index: int | None = None,
    ) -> Alert:
        return Alert(
            checkpoint=self._checkpoint,
            epoch=int(epoch),
            signal=signal,
            trigger="trend" if signal != "early_combined" else "agreement",
            value=float(firing.value),
            threshold=float(firing.threshold),
            level=level,
            explanation=f"step {step} (epoch {epoch}): {description} {firing.reason}",
            step=int(step),
            class_index=class_index,
        )

    def _combined(self, look: int, step: int, epoch: int) -> Alert | None:
        if "early_combined" in self._firing:
            return None
        recent = [s for s in self._starts if s[0] > look - self.agreement_window]
        families: dict[str, str] = {}
        for _, family, signal in recent:
            families.setdefault(family, signal)
        if len(families) < self.agreement:
            return None
        self._firing.add("early_combined")
        agreeing = ", ".join(f"{signal} ({family})" for family, signal in sorted(families.items()))
        text = (
            f"{len(families)} independent signals started firing within "
            f"{self.agreement_window} looks: {agreeing}"
        )
        return Alert(
            checkpoint=self._checkpoint,
            epoch=int(epoch),
            signal="early_combined",
            trigger="agreement",
            value=float(len(families)),
            threshold=float(self.agreement),
            level=None,
            explanation=f"step {step} (epoch {epoch}): {text}",
            step=int(step),
        )
