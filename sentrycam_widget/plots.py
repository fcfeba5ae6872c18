"""Matplotlib figures of a recorded run: alert signals over the checkpoints and stored frames.

The case-study notebooks draw these; they read only a run directory (or a case-study trace).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

PLOTTED = (
    "val_loss",
    "inter_class_distance_2d",
    "intra_class_variance_2d",
    "between_within_2d",
    "fisher_ratio",
    "effective_rank",
    "cka_prev",
    "dead_fraction",
)


# short names of the alert signals for tables and panel titles
SIGNAL_LABELS = {
    "combined": "combined",
    "reference": "ref V/D",
    "val_loss": "val-loss rule",
    "intra_class_variance_2d": "V 2-D",
    "inter_class_distance_2d": "D 2-D",
    "between_within_2d": "B/W 2-D",
    "fisher_ratio": "Fisher",
    "nc1": "NC1",
    "effective_rank": "eff. rank",
    "cka_prev": "CKA",
    "dead_fraction": "dead units",
}


def plot_signals(
    trace: dict[str, Any], signals: Sequence[str] = PLOTTED, marks: dict[str, int] | None = None
) -> Any:
    """One panel per signal over the checkpoints; red ticks where it fired, a black dashed line
    where ``combined`` first fired, grey lines at ``marks`` (e.g. the LR change)."""
    import matplotlib.pyplot as plt

    present = [s for s in signals if any(s in r for r in trace["records"])]
    columns = min(4, len(present))
    rows = -(-len(present) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(2.6 * columns, 2.2 * rows), layout="constrained", squeeze=False
    )
    for ax in axes.flat[len(present) :]:
        ax.set_visible(False)
    combined = trace["first_firing"].get("combined")
    for ax, name in zip(axes.flat, present, strict=False):
        points = [(r["checkpoint"], r[name]) for r in trace["records"] if name in r]
        ax.plot(*zip(*points, strict=True), color="0.3", lw=1)
        fired = {a["checkpoint"] for a in trace["alerts"] if a["signal"] == name}
        values = dict(points)
        ax.scatter(sorted(fired), [values[i] for i in sorted(fired)], color="red", s=14, zorder=3)
        for label, index in (marks or {}).items():
            ax.axvline(index, color="0.6", lw=1, label=label)
        if combined is not None:
            ax.axvline(combined, color="black", ls="--", lw=1, label="combined")
        ax.set_title(SIGNAL_LABELS.get(name, name), fontsize=9)
        ax.set_xlabel("checkpoint", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(trace["name"], fontsize=10)
    return fig


def plot_frames(
    trace: dict[str, Any],
    checkpoints: Sequence[int],
    method: str = "sentrycam",
    classes: Sequence[int] | None = None,
) -> Any:
    """The stored frames at ``checkpoints`` (background, points, misclassified rings).

    With ``classes``, only those classes' probe points are drawn (e.g. task 1 across a switch).
    """
    import dataclasses

    import matplotlib.pyplot as plt

    from .render import draw_frame, palette
    from .store import RunStore

    store = RunStore.open(trace["run_dir"])
    labels = store.labels
    keep = np.ones(labels.shape, bool) if classes is None else np.isin(labels, classes)
    fig, axes = plt.subplots(
        1, len(checkpoints), figsize=(2.6 * len(checkpoints), 2.8), layout="constrained"
    )
    for ax, index in zip(np.atleast_1d(axes), checkpoints, strict=True):
        frame = store.frame(method, index)
        predictions = store.checkpoint(index).predictions
        shown = dataclasses.replace(frame, embedding=frame.embedding[keep], recon_pred=None)
        draw_frame(
            ax,
            shown,
            labels[keep],
            None if predictions is None else predictions[keep],
            palette(store.n_classes),
        )
        fired = sorted({a["signal"] for a in frame.alerts})
        if fired:
            ax.set_xlabel(
                ", ".join(SIGNAL_LABELS.get(a, a) for a in fired), fontsize=7, color="red"
            )
    fig.suptitle(trace["name"], fontsize=10)
    return fig
