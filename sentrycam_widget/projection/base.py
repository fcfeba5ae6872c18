"""The projector protocol and the method registry; shared by SentryCam, UMAP and DVI.

Every method turns a stream of :class:`~sentrycam_widget.records.Checkpoint` records into
:class:`~sentrycam_widget.records.Frame` records, one per checkpoint, in order. The monitor, the
store, the metrics and the widget only ever see this protocol, so adding a method needs no
change anywhere else.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Any, ClassVar, Protocol

from ..errors import InputError
from ..records import Checkpoint, Frame


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
        """Project one checkpoint (all N points), warm-starting from the previous one.

        Parameters
        ----------
        checkpoint
            The next checkpoint; its index must be larger than the last one's.

        Returns
        -------
        Frame
            The checkpoint's frame (positions, and background and ``recon_pred`` for methods
            with an inverse).
        """

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything beyond the stored frames needed to resume (e.g. network weights).

        Returns
        -------
        dict
            Tensors, numpy arrays and plain values, as
            :meth:`~sentrycam_widget.store.RunStore.save_projector_state` stores them.
        """

    @abc.abstractmethod
    def resume(self, history: RunHistory, state: dict[str, Any] | None) -> None:
        """Rebuild in-memory state from the frames already stored (and ``state`` if saved).

        Parameters
        ----------
        history
            The run so far (a :class:`~sentrycam_widget.store.RunStore` or a view of it).
        state
            What :meth:`state_dict` returned after the last stored frame, or None.
        """


_REGISTRY: dict[str, str] = {
    "sentrycam": "sentrycam_widget.projection.sentrycam:SentryCamProjector",
    "sentrycam-spec": "sentrycam_widget.projection.sentrycam:SpecSentryCamProjector",
    "umap": "sentrycam_widget.projection.umap:UMAPProjector",
    "umap-unseeded": "sentrycam_widget.projection.umap:UnseededUMAPProjector",
    "umap-independent": "sentrycam_widget.projection.umap:IndependentUMAPProjector",
    "dvi": "sentrycam_widget.projection.dvi:DVIProjector",
}


def available_methods() -> list[str]:
    """Names accepted by :func:`make_projector` and ``--method``.

    Returns
    -------
    list of str
        Sorted method names.
    """
    return sorted(_REGISTRY)


def register_method(name: str, target: str) -> None:
    """Register ``"package.module:Class"`` under ``name`` (imported lazily on first use)."""
    _REGISTRY[name] = target


def require_method(method: str, stored: Iterable[str] = ()) -> None:
    """Fail, listing what is available, unless ``method`` is registered or one of ``stored``.

    Parameters
    ----------
    method
        The projection method asked for.
    stored
        Methods a run already holds frames of (accepted even when not registered here).
    """
    known = sorted(set(_REGISTRY) | set(stored))
    if method not in known:
        raise InputError(f"unknown projection method {method!r}; available: {', '.join(known)}")


def make_projector(method: str, **options: Any) -> Projector:
    """Create the projector registered as ``method``.

    Parameters
    ----------
    method
        A name of :func:`available_methods`.
    **options
        Keyword options of that method's projector (``seed``, ``device``, budgets, ...).

    Returns
    -------
    Projector
        A fresh projector.
    """
    import importlib

    require_method(method)
    module_name, class_name = _REGISTRY[method].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**options)
