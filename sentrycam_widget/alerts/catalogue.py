"""The signal catalogue: each signal's bad direction, trigger and family, and first firings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..records import Alert


@dataclass(frozen=True)
class SignalSpec:
    """How one signal is read: its bad direction, its trigger and its family for agreement."""

    name: str
    description: str
    higher_is_bad: bool
    trigger: str  # "reference" or "robust_z"
    family: str | None = None  # independent evidence group for the combined alert
    abs_floor: float = 1e-12


SIGNALS: dict[str, SignalSpec] = {
    spec.name: spec
    for spec in (
        SignalSpec("intra_class_variance_2d", "intra-class variance V (2-D)", True, "reference"),
        SignalSpec("inter_class_distance_2d", "inter-class distance D (2-D)", False, "reference"),
        SignalSpec("val_loss", "validation loss", True, "reference"),
        SignalSpec(
            "between_within_2d", "between/within ratio (2-D)", False, "robust_z", "layout_2d"
        ),
        SignalSpec("fisher_ratio", "Fisher ratio (features)", False, "robust_z", "separation"),
        SignalSpec("nc1", "NC1 within/between (features)", True, "robust_z", "separation"),
        SignalSpec("effective_rank", "effective rank (features)", False, "robust_z", "rank"),
        SignalSpec(
            "cka_prev", "linear CKA to previous checkpoint", False, "robust_z", "drift", 0.005
        ),
        SignalSpec("dead_fraction", "dead-unit fraction", True, "robust_z", "dead_units", 0.005),
    )
}
REFERENCE_SIGNALS = ("intra_class_variance_2d", "inter_class_distance_2d")


def first_firing(alerts: Sequence[Alert | dict[str, Any]]) -> dict[str, int | None]:
    """Per signal (plus ``reference`` = earliest of V and D, and ``combined``): first checkpoint.

    ``None`` where a signal never fired. ``alerts`` are records or their stored JSON (only
    ``signal`` and ``checkpoint`` are read). The audit CLI prints this next to the alerts.
    """
    first: dict[str, int | None] = dict.fromkeys([*SIGNALS, "reference", "combined"])
    fired_at = [
        (a.checkpoint, a.signal) if isinstance(a, Alert) else (int(a["checkpoint"]), a["signal"])
        for a in alerts
    ]
    for checkpoint, name in sorted(fired_at, key=lambda pair: pair[0]):
        if name not in first:
            raise InputError(f"unknown alert signal {name!r}")
        if first[name] is None:
            first[name] = checkpoint
    fired = [first[name] for name in REFERENCE_SIGNALS if first[name] is not None]
    first["reference"] = min(fired) if fired else None
    return first
