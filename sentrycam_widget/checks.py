"""Input checks: labels, thumbnails, checkpoint order and data every later step must accept.

Each check raises :class:`~sentrycam_widget.errors.InputError` naming the problem and what to
do, at the moment the data comes in (import, ``Monitor(...)``, ``Monitor.checkpoint``), instead
of a confusing failure minutes or files later.
"""

from __future__ import annotations

import numbers
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError

if TYPE_CHECKING:
    import torch

    from .records import Checkpoint

NEIGHBOURS = 15
"""k of the faithfulness metrics (trustworthiness, continuity, kNN preservation)."""

MIN_POINTS = 2 * NEIGHBOURS + 1
"""The fewest probe points a run can be projected and scored with (the metrics need k < N / 2)."""

MAX_LABEL = int(np.iinfo(np.uint16).max)
"""The largest class index the widget and the HTML export can draw (labels travel as uint16)."""

MAX_ABS_FEATURE = 1e15
"""Features beyond this magnitude overflow float32 squared distances (kNN, graph weights)."""


def check_point_count(n_points: int, where: str) -> None:
    """Refuse probe sets too small to project and score (``N < MIN_POINTS``).

    Parameters
    ----------
    n_points : int
        Number of probe points.
    where : str
        What holds them, for the message (a file, "the probe set").
    """
    if n_points < MIN_POINTS:
        raise InputError(
            f"{where} has {n_points} probe points; projecting and scoring a run needs at least "
            f"{MIN_POINTS} (the faithfulness metrics use k = {NEIGHBOURS} neighbours, k < N / 2)"
        )


def check_label_range(labels: np.ndarray, where: str) -> None:
    """Refuse class indices the widget and HTML export cannot carry (above ``MAX_LABEL``).

    Parameters
    ----------
    labels : numpy.ndarray
        Integer class indices [N].
    where : str
        What holds them, for the message.
    """
    top = int(np.max(labels)) if np.size(labels) else 0
    if top > MAX_LABEL:
        raise InputError(
            f"{where} has class index {top}; the widget and the HTML export draw classes "
            f"0..{MAX_LABEL}: renumber the classes to consecutive indices from 0"
        )


def check_feature_values(features: np.ndarray, where: str) -> None:
    """Refuse features that are non-finite or so large that distances overflow float32.

    Parameters
    ----------
    features : numpy.ndarray
        Representations [N, D] (or [T, N, D]).
    where : str
        What holds them, for the message.
    """
    array = np.asarray(features)
    finite = np.isfinite(array)
    if not finite.all():
        raise InputError(f"{where} contains {int((~finite).sum())} NaN/inf value(s)")
    largest = float(np.abs(array).max()) if array.size else 0.0
    if largest > MAX_ABS_FEATURE:
        raise InputError(
            f"{where} has values up to {largest:.3g}; beyond {MAX_ABS_FEATURE:.0e} squared "
            "distances overflow float32: rescale the features (e.g. standardise them)"
        )


def constant_features(features: np.ndarray) -> bool:
    """True when every probe point has the same representation (nothing to project or score).

    Parameters
    ----------
    features : numpy.ndarray
        Representations [N, D].

    Returns
    -------
    bool
        Whether all rows are equal.
    """
    array = np.asarray(features)
    return bool(array.shape[0] > 0 and (array == array[:1]).all())


def check_model_has_data(model: torch.nn.Module) -> None:
    """Refuse a model whose parameters or buffers live on the ``meta`` device (shapes, no data).

    Parameters
    ----------
    model : torch.nn.Module
        The model to be watched.
    """
    tensors = [*model.parameters(), *model.buffers()]
    if any(t.device.type == "meta" for t in tensors):
        raise InputError(
            f"the model ({type(model).__name__}) has tensors on the 'meta' device, which hold "
            "no values; load or materialise its weights (e.g. model.to_empty(device=...) and "
            "load_state_dict) before watching it"
        )


def as_labels(
    labels: Any, where: str = "labels", *, n: int | None = None, min_classes: int = 1
) -> np.ndarray:
    """Class indices as a contiguous int64 [N] array, or an InputError naming ``where``.

    Parameters
    ----------
    labels : array-like or torch.Tensor
        Class indices [N]; floats are accepted when every value is a whole number.
    where : str
        What holds them, for the message (``"labels"``, ``"key 'labels'"``).
    n : int, optional
        The length they must have.
    min_classes : int
        The fewest distinct classes accepted (2 where decision regions are drawn).

    Returns
    -------
    numpy.ndarray
        int64 [N].
    """
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    array = np.asarray(labels)
    if array.ndim != 1 or (n is not None and array.shape[0] != n):
        expected = "[N]" if n is None else f"[N] = [{n}]"
        raise InputError(f"{where} must be 1-D {expected}, got shape {array.shape}")
    if array.dtype.kind == "f" and np.isfinite(array).all() and (array == np.round(array)).all():
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise InputError(f"{where} must be integer class indices, got dtype {array.dtype}")
    if array.size and array.min() < 0:
        raise InputError(f"{where} must be non-negative class indices")
    if min_classes > 1 and np.unique(array).size < min_classes:
        raise InputError(
            f"{where} have only one class; SentryCam needs at least two classes to draw "
            "decision regions and class geometry"
        )
    return np.ascontiguousarray(array, dtype=np.int64)


def check_thumbnails(images: Any, n: int, where: str = "images") -> np.ndarray:
    """Hover thumbnails as a contiguous uint8 [N, h, w] or [N, h, w, 3] array, or an InputError.

    Parameters
    ----------
    images : array-like
        One thumbnail per probe point.
    n : int
        The number of probe points.
    where : str
        What holds them, for the message.

    Returns
    -------
    numpy.ndarray
        The thumbnails, uint8.
    """
    array = np.asarray(images)
    grey_or_rgb = array.ndim == 3 or (array.ndim == 4 and array.shape[-1] == 3)
    if array.dtype != np.uint8 or array.shape[:1] != (n,) or not grey_or_rgb:
        raise InputError(
            f"{where} must be uint8 [N, h, w] or [N, h, w, 3] with N = {n}, got "
            f"{array.dtype} {array.shape}"
        )
    return np.ascontiguousarray(array)


def check_increasing(index: int, last: int | None, what: str = "checkpoints") -> None:
    """Refuse a checkpoint index that does not follow the last one seen.

    Parameters
    ----------
    index : int
        The arriving checkpoint's index.
    last : int or None
        The last index seen (None before the first).
    what : str
        Who needs the order, for the message.
    """
    if last is not None and index <= last:
        raise InputError(f"{what} must arrive in increasing index order; got {index} after {last}")


def check_count(name: str, value: Any, *, negative: bool = False) -> int:
    """An integer epoch or step (ints, integral floats, numpy integers); >= 0 unless ``negative``."""
    kind = "an integer" if negative else "a non-negative integer"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be {kind}, got {value!r}")
    if value != int(value) or (value < 0 and not negative):
        raise InputError(f"{name} must be {kind}, got {value!r}")
    return int(value)


def checkpoint_axes(
    last_epoch: int, epoch: Any, *, step: Any = None, val_loss: Any = None, **scalars: Any
) -> tuple[int, int | None, dict[str, Any]]:
    """``(epoch, step, scalars)`` of a ``Monitor.checkpoint`` call, checked.

    A left-out epoch keeps ``last_epoch``; one of epoch and step must be given; ``val_loss``
    joins the scalars under that name.
    """
    if epoch is None and step is None:
        raise InputError("checkpoint() needs an epoch or a step (or both)")
    epoch = last_epoch if epoch is None else check_count("epoch", epoch, negative=True)
    step = None if step is None else check_count("step", step)
    if val_loss is not None:
        scalars = {"val_loss": val_loss, **scalars}
    return epoch, step, scalars


def check_captured(checkpoint: Checkpoint, layer: str) -> None:
    """Refuse non-finite or absurd features; warn when every probe point has the same ones."""
    where = f"checkpoint {checkpoint.index} (epoch {checkpoint.epoch})"
    check_feature_values(checkpoint.features, f"the features of {where}")
    if constant_features(checkpoint.features):
        warnings.warn(
            f"{where}: every probe point has the same features at layer {layer!r} (a dead "
            "layer?); its layout and metrics say nothing",
            stacklevel=4,
        )
