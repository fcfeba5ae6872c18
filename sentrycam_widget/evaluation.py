"""Scoring a stored run: per-checkpoint frame metrics and the run's temporal metrics.

The run is read one checkpoint at a time: only the fixed evaluation subsample of each
checkpoint's features (:func:`~sentrycam_widget.metrics.eval_indices`, at most 2,000 points) is
kept for the temporal metrics (as float32, in one array they use as it is), which use that
subsample anyway, so memory does not grow with N and the numbers equal those of the whole arrays.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .errors import InputError, RunFormatError
from .metrics import eval_indices, frame_metrics, temporal_metrics
from .projection.base import require_method
from .records import Frame
from .store import DamagedEntryWarning, RunStore

FRAME_METRICS = ("trustworthiness", "continuity", "knn_preservation", "knn_count_self")


def evaluate_run(store: RunStore, method: str, *, strict: bool = False) -> dict[str, Any]:
    """Per-checkpoint frame metrics (stored ones, computed where missing) and temporal metrics.

    Parameters
    ----------
    store
        The run to score.
    method
        A projection method with frames in ``store``.
    strict
        Fail (RunFormatError naming the file) on a damaged checkpoint or frame instead of
        skipping it with a :class:`~sentrycam_widget.store.DamagedEntryWarning`.

    Returns
    -------
    dict
        ``{"run", "method", "checkpoints": [{"index", "epoch", "metrics"}], "temporal",
        "skipped": [why each damaged entry was left out]}``.
    """
    require_method(method, store.methods())
    indices = store.frame_indices(method)
    if not indices:
        raise InputError(
            f"{store.path} has no {method!r} frames; run `python -m sentrycam_widget project "
            f"{store.path} --method {method}` first"
        )
    sample = eval_indices(store.n_points)
    features: np.ndarray | None = None  # [T, sample, D] float32, filled in place
    rows, embeddings, skipped = [], [], []
    for index in indices:
        try:
            checkpoint, frame = store.checkpoint(index), store.frame(method, index)
            _require_coordinates(store, frame)
        except (RunFormatError, UnusableFrameError) as exc:
            if strict:
                raise
            what = "damaged entry: " if isinstance(exc, RunFormatError) else ""
            warnings.warn(f"skipping {what}{exc}", DamagedEntryWarning, stacklevel=2)
            skipped.append(str(exc))
            continue
        metrics = dict(frame.metrics)
        if not all(key in metrics for key in FRAME_METRICS):
            metrics.update(frame_metrics(checkpoint, frame))
        if features is None:
            shape = (len(indices), sample.size, checkpoint.features.shape[1])
            features = np.empty(shape, dtype=np.float32)
        features[len(rows)] = checkpoint.features[sample]
        rows.append({"index": index, "epoch": frame.epoch, "metrics": metrics})
        embeddings.append(frame.embedding[sample])
    if not rows:
        raise InputError(f"every {method!r} frame of {store.path} is damaged: {skipped[0]}")
    return {
        "run": str(store.path),
        "method": method,
        "checkpoints": rows,
        "temporal": temporal_metrics(features[: len(rows)], embeddings),
        "skipped": skipped,
    }


class UnusableFrameError(InputError):
    """A readable frame that cannot be scored: some of its points have no coordinates."""


def _require_coordinates(store: RunStore, frame: Frame) -> None:
    """UnusableFrameError naming the frame's file when any of its points is NaN/inf."""
    missing = int((~np.isfinite(frame.embedding)).any(axis=1).sum())
    if missing:
        raise UnusableFrameError(
            f"{store.frame_location(frame.method, frame.index)}: {missing} of "
            f"{frame.embedding.shape[0]} points have no coordinates (NaN/inf)"
        )
