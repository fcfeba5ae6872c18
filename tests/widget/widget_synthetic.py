"""Small synthetic checkpoints and frames with known content for the widget tests."""

from __future__ import annotations

import numpy as np

from sentrycam_widget.records import Background, Checkpoint, Frame


def synthetic_checkpoint(index: int, labels: np.ndarray, seed: int = 0) -> Checkpoint:
    rng = np.random.default_rng(seed + index)
    n, c = len(labels), int(labels.max()) + 1
    logits = rng.normal(size=(n, c)).astype(np.float32)
    logits[np.arange(n), labels] += 2.0
    return Checkpoint(
        index=index,
        epoch=10 * index,
        features=rng.normal(size=(n, 4)).astype(np.float32),
        labels=labels,
        logits=logits,
        scalars={"val_loss": 1.0 / (index + 1)},
    )


def synthetic_frame(
    method: str, index: int, n: int, resolution: int = 20, background: bool = True
) -> Frame:
    rng = np.random.default_rng(100 + index)
    emb = rng.normal(size=(n, 2)).astype(np.float32) * (index + 1)
    bg = None
    if background:
        classes = np.tile(np.arange(resolution) % 3, (resolution, 1))
        alpha = np.full((resolution, resolution), 180, np.uint8)
        alpha[:, ::5] = 0
        lo, hi = emb.min(axis=0) - 0.5, emb.max(axis=0) + 0.5
        bg = Background(classes, alpha, (lo[0], hi[0], lo[1], hi[1]))
    return Frame(
        method,
        index,
        10 * index,
        emb,
        background=bg,
        metrics={"trustworthiness": 0.9, "ppr": 0.95},
        alerts=[{"signal": "V", "explanation": "intra-class variance rose"}] if index == 1 else [],
    )
