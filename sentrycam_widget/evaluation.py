"""Scoring a stored run: per-checkpoint frame metrics and the run's temporal metrics."""

from __future__ import annotations

from typing import Any

from .errors import InputError
from .metrics import frame_metrics, temporal_metrics
from .projection.base import require_method
from .store import RunStore

FRAME_METRICS = ("trustworthiness", "continuity", "knn_preservation", "knn_count_self")


def evaluate_run(store: RunStore, method: str) -> dict[str, Any]:
    """Per-checkpoint frame metrics (stored ones, computed where missing) and temporal metrics.

    Parameters
    ----------
    store
        The run to score.
    method
        A projection method with frames in ``store``.

    Returns
    -------
    dict
        ``{"run", "method", "checkpoints": [{"index", "epoch", "metrics"}], "temporal"}``.
    """
    require_method(method, store.methods())
    indices = store.frame_indices(method)
    if not indices:
        raise InputError(
            f"{store.path} has no {method!r} frames; run `python -m sentrycam_widget project "
            f"{store.path} --method {method}` first"
        )
    rows, features, embeddings = [], [], []
    for index in indices:
        checkpoint, frame = store.checkpoint(index), store.frame(method, index)
        metrics = dict(frame.metrics)
        if not all(key in metrics for key in FRAME_METRICS):
            metrics.update(frame_metrics(checkpoint, frame))
        rows.append({"index": index, "epoch": frame.epoch, "metrics": metrics})
        features.append(checkpoint.features)
        embeddings.append(frame.embedding)
    return {
        "run": str(store.path),
        "method": method,
        "checkpoints": rows,
        "temporal": temporal_metrics(features, embeddings),
    }
