"""sentrycam_widget: watch a neural network learn, checkpoint by checkpoint, in Jupyter.

Public names are imported lazily so that ``import sentrycam_widget`` stays cheap (no umap,
no numba compilation) until a feature that needs them is used.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# numba's OpenMP/TBB pools (umap-learn, pynndescent) spin beside torch's OpenMP team and made
# torch steps 7-10x slower in the same process (0.051 -> 0.356 s per autoencoder step after one
# UMAP fit, 0.071 s with workqueue). Users who set the variable themselves keep their choice.
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

__version__ = "0.1.0"

_PUBLIC = {
    "Monitor": "sentrycam_widget.monitor",
    "RunStore": "sentrycam_widget.store",
    "ProbeSet": "sentrycam_widget.probe",
    "Recorder": "sentrycam_widget.capture",
    "capture_checkpoint": "sentrycam_widget.capture",
    "checkpoint_from_arrays": "sentrycam_widget.capture",
    "project_checkpoint": "sentrycam_widget.pipeline",
    "project_run": "sentrycam_widget.pipeline",
    "AlertEngine": "sentrycam_widget.alerts",
    "Alert": "sentrycam_widget.records",
    "EarlyWatch": "sentrycam_widget.alerts",
    "Checkpoint": "sentrycam_widget.records",
    "LinearHead": "sentrycam_widget.records",
    "TorchHead": "sentrycam_widget.records",
    "Frame": "sentrycam_widget.records",
    "Background": "sentrycam_widget.records",
    "make_projector": "sentrycam_widget.projection",
    "available_methods": "sentrycam_widget.projection",
    "SentryCamError": "sentrycam_widget.errors",
    "InputError": "sentrycam_widget.errors",
    "RunFormatError": "sentrycam_widget.errors",
    "WorkerError": "sentrycam_widget.errors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'sentrycam_widget' has no attribute {name!r}")
