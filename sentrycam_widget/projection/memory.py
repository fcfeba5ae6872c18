"""Working memory (SPEC §2.3): a few points from exponentially older checkpoints, frozen in 2-D.

For checkpoint t the memory holds checkpoints t−1, t−2, t−3, t−5, t−9, t−17, … (t−1 and
t−1−2^i), so it grows like log t. Each remembered checkpoint keeps a random 5% of the probe
points (at least ``min_points``, or all if fewer), their representations at that checkpoint,
their **frozen** 2-D positions (where that checkpoint's frame drew them) and the checkpoint's
per-feature mean and variance, from which the drift margin is computed.

Margin units: the drift score δ = mean_d |μ_t − μ_e| / (sqrt(var_e + var_t) + eps), clipped to
[0.1, 1], is dimensionless. In 2-D it is scaled by ``0.1 × RMS radius`` of the memory
checkpoint's frame (RMS distance of its points from their centroid), so a memory point may move
between 1% and 10% of its layout's radius without penalty, whatever the layout's scale. For
a layout of RMS radius 10 (typical of UMAP-like layouts) this equals the reference's raw units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MARGIN_LAYOUT_FRACTION = 0.1
_EPS = 5e-4


def memory_epochs(t: int) -> list[int]:
    """Checkpoint indices remembered at checkpoint ``t``: t−1, then t−1−2^i while ≥ 0."""
    if t < 1:
        return []
    epochs = [t - 1]
    step = 1
    while t - 1 - step >= 0:
        epochs.append(t - 1 - step)
        step *= 2
    return epochs


def drift_score(
    mean_t: np.ndarray, var_t: np.ndarray, mean_e: np.ndarray, var_e: np.ndarray
) -> float:
    """Mean per-feature z-score of the shift of feature means, clipped to [0.1, 1]."""
    z = np.abs(mean_t - mean_e) / (np.sqrt(var_e + var_t) + _EPS)
    return float(np.clip(z.mean(), 0.1, 1.0))


def layout_scale(embedding: np.ndarray) -> float:
    """RMS distance of a layout's points from their centroid (the unit of 2-D margins)."""
    centred = embedding - embedding.mean(axis=0)
    return float(np.sqrt((centred**2).sum(axis=1).mean()))


@dataclass(eq=False)
class MemoryEpoch:
    """What one remembered checkpoint contributes: a point subset, its features and frozen 2-D."""

    index: int
    point_ids: np.ndarray
    features: np.ndarray
    frozen: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    scale: float

    def margin(self, mean_t: np.ndarray, var_t: np.ndarray) -> float:
        """Drift margin in this checkpoint's 2-D units (see the module docstring)."""
        return drift_score(mean_t, var_t, self.mean, self.var) * MARGIN_LAYOUT_FRACTION * self.scale


def remember(
    index: int,
    features: np.ndarray,
    embedding: np.ndarray,
    seed: int,
    fraction: float = 0.05,
    min_points: int = 50,
) -> MemoryEpoch:
    """Keep a seeded random ``fraction`` of checkpoint ``index``'s points with their frame positions.

    The subset depends only on ``(seed, index)``, so a resumed run remembers the same points.
    """
    n = features.shape[0]
    size = min(n, max(min_points, round(fraction * n)))
    ids = np.sort(np.random.default_rng([seed, index]).choice(n, size=size, replace=False))
    return MemoryEpoch(
        index=index,
        point_ids=ids,
        features=np.ascontiguousarray(features[ids], dtype=np.float32),
        frozen=np.ascontiguousarray(embedding[ids], dtype=np.float32),
        mean=features.mean(axis=0, dtype=np.float64),
        var=features.var(axis=0, dtype=np.float64),
        scale=layout_scale(np.asarray(embedding, dtype=np.float64)),
    )


@dataclass(eq=False)
class MemorySet:
    """Memory nodes for one update: features [M, D], frozen positions [M, 2], margins [M]."""

    features: np.ndarray
    frozen: np.ndarray
    margins: np.ndarray
    epochs: np.ndarray

    @property
    def size(self) -> int:
        return int(self.features.shape[0])


class MemoryBank:
    """Every checkpoint's remembered subset, so any later checkpoint can assemble its memory."""

    def __init__(self) -> None:
        self._epochs: dict[int, MemoryEpoch] = {}

    def __len__(self) -> int:
        return len(self._epochs)

    def add(self, epoch: MemoryEpoch) -> None:
        self._epochs[epoch.index] = epoch

    def get(self, index: int) -> MemoryEpoch:
        return self._epochs[index]

    def memory_for(self, t: int, features_t: np.ndarray) -> MemorySet | None:
        """The memory of checkpoint ``t`` (None at the first checkpoint), margins against ``features_t``."""
        chosen = [self._epochs[e] for e in memory_epochs(t) if e in self._epochs]
        if not chosen:
            return None
        mean_t = features_t.mean(axis=0, dtype=np.float64)
        var_t = features_t.var(axis=0, dtype=np.float64)
        return MemorySet(
            features=np.concatenate([m.features for m in chosen]),
            frozen=np.concatenate([m.frozen for m in chosen]),
            margins=np.concatenate(
                [np.full(m.point_ids.size, m.margin(mean_t, var_t), np.float32) for m in chosen]
            ),
            epochs=np.concatenate([np.full(m.point_ids.size, m.index, np.int64) for m in chosen]),
        )
