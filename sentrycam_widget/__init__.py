"""sentrycam_widget: watch a neural network learn, checkpoint by checkpoint, in Jupyter.

Public names are imported lazily at run time so that ``import sentrycam_widget`` stays cheap (no
torch, umap or numba compilation) until a feature that needs them is used; the imports under
``TYPE_CHECKING`` show editors and type checkers the same names.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

# numba's OpenMP/TBB pools (umap-learn, pynndescent) spin beside torch's OpenMP team and slow
# torch steps several-fold in the same process (README, "Performance notes"). Users who set the
# variable themselves keep their choice.
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

try:
    __version__ = version("sentrycam-widget")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from .alerts import AlertEngine, EarlyWatch
    from .capture import Recorder, capture_checkpoint, checkpoint_from_arrays
    from .errors import InputError, RunFormatError, SentryCamError, WorkerError
    from .evaluation import evaluate_run
    from .export import export_npz
    from .export_parquet import export_parquet
    from .export_tensorboard import export_tensorboard
    from .html_export import export_run_html
    from .importing import import_arrays
    from .monitor import Monitor
    from .pipeline import project_checkpoint, project_run
    from .probe import ProbeSet
    from .projection import available_methods, make_projector
    from .records import Alert, Background, Checkpoint, Frame, Head, LinearHead, TorchHead
    from .store import RunStore
    from .viewer import RunViewer

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
    "Head": "sentrycam_widget.records",
    "RunViewer": "sentrycam_widget.viewer",
    "import_arrays": "sentrycam_widget.importing",
    "evaluate_run": "sentrycam_widget.evaluation",
    "export_npz": "sentrycam_widget.export",
    "export_parquet": "sentrycam_widget.export_parquet",
    "export_tensorboard": "sentrycam_widget.export_tensorboard",
    "export_run_html": "sentrycam_widget.html_export",
}

__all__ = [
    "Alert",
    "AlertEngine",
    "Background",
    "Checkpoint",
    "EarlyWatch",
    "Frame",
    "Head",
    "InputError",
    "LinearHead",
    "Monitor",
    "ProbeSet",
    "Recorder",
    "RunFormatError",
    "RunStore",
    "RunViewer",
    "SentryCamError",
    "TorchHead",
    "WorkerError",
    "__version__",
    "available_methods",
    "capture_checkpoint",
    "checkpoint_from_arrays",
    "evaluate_run",
    "export_npz",
    "export_parquet",
    "export_run_html",
    "export_tensorboard",
    "import_arrays",
    "make_projector",
    "project_checkpoint",
    "project_run",
]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'sentrycam_widget' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
