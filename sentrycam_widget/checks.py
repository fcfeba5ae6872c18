"""Input checks that data accepted now can go through every later step (project, metrics, HTML).

Each check raises :class:`~sentrycam_widget.errors.InputError` naming the problem and what to
do, at the moment the data comes in (import, ``Monitor(...)``, ``Monitor.checkpoint``), instead
of a confusing failure minutes or files later.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
import torch

from .errors import InputError
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
