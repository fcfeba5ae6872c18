"""Density-guided sampling (SPEC §2.1): train the projector on as few points as keep the density.

For a uniform subsample of ratio r the mean distance to the k-th nearest neighbour grows (points
get farther apart); ``rho(r) = dbar_full / dbar_r`` is the density kept and
``s(r) = (1 - rho(r)) / (1 - r)`` the density lost per unit of data removed. The chosen ratio is
the smallest r with ``s(r) <= tau``: on a d-dimensional manifold ``rho(r) ~ r^(1/d)``, so low
intrinsic dimension keeps more points. On top of the reference rule we search a finer grid, keep
a floor on the sample size (small probe sets use every point) and keep every class represented.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError

DEFAULT_RATIOS = tuple(np.round(np.arange(0.1, 0.5 + 1e-9, 0.025), 3))


@dataclass(eq=False)
class SampleResult:
    """Chosen probe-point indices (sorted) and the density curve that chose them."""

    indices: np.ndarray
    ratio: float
    ratios: np.ndarray
    rho: np.ndarray
    slope: np.ndarray
    tau: float

    @property
    def size(self) -> int:
        return int(self.indices.size)


def density_curve(
    points: np.ndarray,
    ratios: tuple[float, ...] = DEFAULT_RATIOS,
    k: int = 20,
    n_queries: int = 300,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ratios, rho, slope)`` over nested uniform subsamples of ``points``.

    The subsamples are prefixes of one random permutation and the query points are its first
    ``n_queries`` entries, so every query lies in every subsample: one [queries, N] distance
    block then gives the k-th neighbour distance in the full set and in each subsample (paired
    estimates, hence a smoother curve than independent draws at a fraction of the cost).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    n = points.shape[0]
    r = np.asarray(ratios, dtype=np.float64)
    sizes = np.maximum(k + 1, np.round(r * n).astype(np.int64))
    if n <= k or sizes.max() > n:
        raise InputError(f"need more than k = {k} points to measure density, got {n}")
    data = torch.from_numpy(np.ascontiguousarray(points[rng.permutation(n)], dtype=np.float32))
    queries = data[: min(n_queries, int(sizes.min()))]
    dist = torch.cdist(queries, data)
    full = _mean_kth(dist, k)
    rho = np.array([full / max(_mean_kth(dist[:, :size], k), 1e-12) for size in sizes])
    slope = (1.0 - rho) / (1.0 - r)
    return r, rho, slope


def _mean_kth(dist: torch.Tensor, k: int) -> float:
    """Mean k-th nearest *other* point distance; each query's own distance 0 is column 0."""
    return float(torch.topk(dist, k + 1, dim=1, largest=False).values[:, k].double().mean())


def choose_ratio(ratios: np.ndarray, slope: np.ndarray, tau: float) -> float:
    """Smallest ratio whose density loss per unit removed is at most ``tau``; else the largest."""
    ok = np.flatnonzero(slope <= tau)
    return float(ratios[ok[0]] if ok.size else ratios[-1])


def density_guided_sample(
    points: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    tau: float = 0.25,
    k: int = 20,
    n_queries: int = 300,
    min_samples: int = 2000,
    min_per_class: int = 16,
    ratios: tuple[float, ...] = DEFAULT_RATIOS,
) -> SampleResult:
    """Pick a density-preserving uniform subsample with a size floor and every class present.

    ``min_samples`` is a floor on the sample size (``N <= min_samples`` uses every point; when
    the floor is above the largest candidate ratio the density curve is skipped, empty);
    each class keeps at least ``min(min_per_class, its size)`` points so no class loses its
    graph neighbourhood.
    """
    n = points.shape[0]
    if labels.shape != (n,):
        raise InputError(f"labels must be [N] = [{n}], got shape {labels.shape}")
    if n <= min_samples or n <= k + 1:
        everything = np.arange(n)
        return SampleResult(everything, 1.0, np.empty(0), np.empty(0), np.empty(0), tau)
    if min_samples >= round(max(ratios) * n):
        # the floor exceeds every candidate ratio, so the density curve cannot change the size
        r = rho = slope = np.empty(0)
        ratio = min_samples / n
    else:
        r, rho, slope = density_curve(points, ratios, k, n_queries, rng)
        ratio = choose_ratio(r, slope, tau)
    size = min(n, max(min_samples, round(ratio * n)))
    order = rng.permutation(n)
    chosen = _with_every_class(order, size, labels, min_per_class)
    return SampleResult(np.sort(chosen), ratio, r, rho, slope, tau)


def _with_every_class(
    order: np.ndarray, size: int, labels: np.ndarray, min_per_class: int
) -> np.ndarray:
    """First ``size`` of ``order``, topped up with the next points of any under-sampled class."""
    chosen = [order[:size]]
    taken = labels[order[:size]]
    rest = order[size:]
    for cls in np.unique(labels):
        need = min(min_per_class, int((labels == cls).sum())) - int((taken == cls).sum())
        if need > 0:
            chosen.append(rest[labels[rest] == cls][:need])
    return np.concatenate(chosen)
