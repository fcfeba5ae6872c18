"""Geometry-based training alerts (SPEC §5): signals per checkpoint, triggers, and a live engine.

Signals, per checkpoint (:mod:`.signals`):

- reference (the paper's, in the 2-D layout): intra-class variance V (rising is bad) and
  inter-class distance D (falling is bad), watched by the paper's :class:`ReferenceRule`;
  the same rule on the validation loss is the baseline they are compared with.
- scale-free / feature-space: the between/within ratio of the 2-D layout, the Fisher ratio and
  neural-collapse NC1 of the features, their effective rank, linear CKA with the previous
  checkpoint and the dead-unit fraction (ReLU-like layers), watched by the
  :class:`RobustRule` (robust z-score against a rolling median and absolute deviation).
- ``combined``: fires when robust alerts of at least two independent signal families agree
  within a few checkpoints.

Triggers live in :mod:`.rules`, the signal catalogue in :mod:`.catalogue` and the streaming
:class:`AlertEngine` in :mod:`.engine`.
"""

from __future__ import annotations

from ..records import Alert
from .catalogue import REFERENCE_SIGNALS, SIGNALS, SignalSpec, first_firing
from .early import EARLY_SIGNALS, EarlySignal, EarlyWatch
from .engine import AlertEngine
from .rules import Firing, ReferenceRule, RobustRule, TrendRule
from .signals import (
    class_accuracies,
    dead_unit_fraction,
    effective_rank,
    feature_norm,
    fisher_ratio,
    inter_class_distance,
    intra_class_variance,
    linear_cka,
    nc1,
    prediction_margin,
)

__all__ = [
    "EARLY_SIGNALS",
    "REFERENCE_SIGNALS",
    "SIGNALS",
    "Alert",
    "AlertEngine",
    "EarlySignal",
    "EarlyWatch",
    "Firing",
    "ReferenceRule",
    "RobustRule",
    "SignalSpec",
    "TrendRule",
    "class_accuracies",
    "dead_unit_fraction",
    "effective_rank",
    "feature_norm",
    "first_firing",
    "fisher_ratio",
    "inter_class_distance",
    "intra_class_variance",
    "linear_cka",
    "nc1",
    "prediction_margin",
]
