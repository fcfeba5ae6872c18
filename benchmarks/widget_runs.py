"""Synthetic runs for the widget benchmarks: N points in 10 drifting classes, a 200×200
decision raster per frame, predictions that improve over the checkpoints."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from sentrycam_widget.records import Background, Checkpoint, Frame

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
N_CLASSES = 10
RESOLUTION = 200


def synthetic_run(n: int, frames: int, seed: int = 0) -> Iterator[tuple[Checkpoint, Frame]]:
    """``frames`` (checkpoint, frame) pairs of ``n`` points each."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, N_CLASSES, n)
    centres = rng.normal(size=(N_CLASSES, 2)) * 6
    base = centres[labels] + rng.normal(size=(n, 2))
    for t in range(frames):
        emb = (base * (0.6 + 0.05 * t) + rng.normal(size=(n, 2)) * 0.3).astype(np.float32)
        logits = rng.normal(size=(n, N_CLASSES)).astype(np.float32)
        logits[np.arange(n), labels] += 1.0 + 0.3 * t
        features = rng.normal(size=(n, 4))
        checkpoint = Checkpoint(
            t, t, features, labels, logits=logits, scalars={"val_loss": 1 / (t + 1)}
        )
        lo, hi = emb.min(axis=0), emb.max(axis=0)
        xs = np.linspace(lo[0], hi[0], RESOLUTION)
        ys = np.linspace(lo[1], hi[1], RESOLUTION)
        grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
        d = ((grid[:, None, :] - centres[None] * (0.6 + 0.05 * t)) ** 2).sum(-1)
        order = np.sort(d, axis=1)
        margin = (order[:, 1] - order[:, 0]) / (order[:, 1] + 1e-9)
        background = Background(
            d.argmin(1).reshape(RESOLUTION, RESOLUTION),
            np.where(margin < 0.15, 0, np.clip(margin * 230, 0, 230)).reshape(
                RESOLUTION, RESOLUTION
            ),
            (lo[0], hi[0], lo[1], hi[1]),
        )
        frame = Frame(
            "sentrycam", t, t, emb, background=background, metrics={"trustworthiness": 0.9}
        )
        yield checkpoint, frame
