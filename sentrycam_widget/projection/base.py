"""The projector protocol and the frame it produces; shared by SentryCam, UMAP and DVI.

Every method turns a stream of :class:`~sentrycam_widget.capture.Checkpoint` records into
:class:`Frame` records, one per checkpoint, in order. The monitor, the store, the metrics and the
widget only ever see this protocol, so adding a method needs no change anywhere else.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from ..capture import Checkpoint
from ..errors import InputError


@dataclass(eq=False)
class Background:
    """Decision-region raster behind a frame (SPEC §2.6).

    ``classes[i, j]`` is the head's argmax class at grid cell (row i, column j) and ``alpha`` its
    colour strength m' scaled to 0..255 (0 on boundary cells, which are painted white). Row 0 is
    the bottom of the plot (y = y0); cell centres lie on ``linspace(x0, x1, R)`` and
    ``linspace(y0, y1, R)`` with ``extent = (x0, x1, y0, y1)``.
    """

    classes: np.ndarray
    alpha: np.ndarray
    extent: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        self.classes = np.ascontiguousarray(self.classes, dtype=np.uint16)
        self.alpha = np.ascontiguousarray(self.alpha, dtype=np.uint8)
        self.extent = tuple(float(v) for v in self.extent)  # type: ignore[assignment]
        if self.classes.ndim != 2 or self.classes.shape != self.alpha.shape:
            raise InputError(
                f"background classes and alpha must be equal [R, R] rasters, got "
                f"{self.classes.shape} and {self.alpha.shape}"
            )

    @property
    def resolution(self) -> int:
        return int(self.classes.shape[0])


@dataclass(eq=False)
class Frame:
    """One method's picture of one checkpoint: 2-D positions of all N probe points and extras.

    ``recon_pred`` is the head's prediction on the decoded points (methods with an inverse
    only); PPR is ``mean(recon_pred == checkpoint predictions)``. ``metrics`` holds SPEC §4
    numbers, ``timings`` seconds per pipeline stage, ``alerts`` the alert records raised at it.
    """

    method: str
    index: int
    epoch: int
    embedding: np.ndarray
    background: Background | None = None
    recon_pred: np.ndarray | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.embedding = np.ascontiguousarray(self.embedding, dtype=np.float32)
        if self.embedding.ndim != 2 or self.embedding.shape[1] != 2:
            raise InputError(f"frame embedding must be [N, 2], got shape {self.embedding.shape}")
        if self.recon_pred is not None:
            self.recon_pred = np.ascontiguousarray(self.recon_pred, dtype=np.int64)


class RunHistory(Protocol):
    """Read access to what a run already holds, so a projector can resume mid-run."""

    def frame_indices(self, method: str) -> list[int]:
        """Checkpoint indices that already have a frame of ``method``, ascending."""
        ...

    def checkpoint(self, index: int) -> Checkpoint: ...

    def frame(self, method: str, index: int) -> Frame: ...


class Projector(abc.ABC):
    """A method that projects checkpoints to frames, one after another, warm-starting itself.

    ``update`` must be called with checkpoints in increasing ``index`` order. ``state_dict`` /
    ``resume`` let a run continue in a new process from where the stored frames end.
    """

    method: ClassVar[str]
    has_inverse: ClassVar[bool]

    @abc.abstractmethod
    def update(self, checkpoint: Checkpoint) -> Frame:
        """Project one checkpoint (all N points) and return its frame."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything beyond the stored frames needed to resume (e.g. network weights)."""

    @abc.abstractmethod
    def resume(self, history: RunHistory, state: dict[str, Any] | None) -> None:
        """Rebuild in-memory state from the frames already stored (and ``state`` if saved)."""


_REGISTRY: dict[str, str] = {
    "sentrycam": "sentrycam_widget.projection.sentrycam:SentryCamProjector",
    "sentrycam-spec": "sentrycam_widget.projection.sentrycam:SpecSentryCamProjector",
    "umap": "sentrycam_widget.projection.umap:UMAPProjector",
    "umap-independent": "sentrycam_widget.projection.umap:IndependentUMAPProjector",
    "dvi": "sentrycam_widget.projection.dvi:DVIProjector",
}


def available_methods() -> list[str]:
    """Names accepted by :func:`make_projector` and ``--method``."""
    return sorted(_REGISTRY)


def register_method(name: str, target: str) -> None:
    """Register ``"package.module:Class"`` under ``name`` (imported lazily on first use)."""
    _REGISTRY[name] = target


def make_projector(method: str, **options: Any) -> Projector:
    """Create the projector registered as ``method`` with keyword ``options``."""
    import importlib

    if method not in _REGISTRY:
        raise InputError(
            f"unknown projection method {method!r}; available: {', '.join(available_methods())}"
        )
    module_name, class_name = _REGISTRY[method].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**options)
