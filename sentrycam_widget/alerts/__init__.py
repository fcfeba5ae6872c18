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

from .catalogue import REFERENCE_SIGNALS, SIGNALS, SignalSpec, first_firing
from .engine import AlertEngine
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

__all__ = [
    "REFERENCE_SIGNALS",
    "SIGNALS",
    "AlertEngine",
    "Firing",
    "ReferenceRule",
    "RobustRule",
    "SignalSpec",
    "dead_unit_fraction",
    "effective_rank",
    "first_firing",
    "fisher_ratio",
    "inter_class_distance",
    "intra_class_variance",
    "linear_cka",
    "nc1",
]
