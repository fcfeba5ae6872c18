"""Graphs the projector is trained on: spatial fuzzy kNN edges and temporal memory edges.

Spatial (SPEC §2.2): exact kNN (or pynndescent for large sets) turned into UMAP's fuzzy
simplicial set (umap-learn's ``fuzzy_simplicial_set``, vectorised), very weak edges dropped. Temporal
(SPEC §2.3): each current node linked to its cosine-nearest memory nodes. Edges are returned as
``(head, tail, weight)`` arrays and sampled with probability proportional to weight (not DVI's
inverse weighting). Shared with the DVI baseline.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError

EXACT_KNN_MAX_POINTS = 30_000
_BLOCK_ROWS = 2048


def knn_graph(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours by euclidean distance, the point itself first (umap's convention).

    Returns ``(indices [N, k] int64, distances [N, k] float32)``, each row sorted by distance.
    Exact (blocked matrix products on torch) up to ``EXACT_KNN_MAX_POINTS`` points, pynndescent
    above that.
    """
    n = x.shape[0]
    if not 2 <= k <= n:
        raise InputError(f"k nearest neighbours needs 2 <= k <= N = {n}, got k = {k}")
    if n > EXACT_KNN_MAX_POINTS:
        return _approximate_knn(x, k)
    return _exact_knn(np.ascontiguousarray(x, dtype=np.float32), k)


def _exact_knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    data = torch.from_numpy(x)
    sq_norms = (data * data).sum(1)
    indices = torch.empty((x.shape[0], k), dtype=torch.int64)
    for start in range(0, x.shape[0], _BLOCK_ROWS):
        rows = torch.arange(start, min(start + _BLOCK_ROWS, x.shape[0]))
        sq = torch.addmm(sq_norms[None, :], data[rows], data.T, alpha=-2.0)
        sq += sq_norms[rows, None]
        sq[torch.arange(rows.numel()), rows] = -1.0  # self first, even among duplicates
        indices[rows] = torch.topk(sq, k, dim=1, largest=False).indices
    # recompute the chosen distances directly (the matrix-product form loses precision in
    # near-ties) and re-sort, keeping self in column 0
    dists = torch.linalg.vector_norm(data[indices] - data[:, None, :], dim=2)
    dists[:, 0] = 0.0
    order = torch.argsort(dists[:, 1:], dim=1, stable=True) + 1
    order = torch.cat([torch.zeros((x.shape[0], 1), dtype=torch.int64), order], dim=1)
    return (
        torch.gather(indices, 1, order).numpy(),
        torch.gather(dists, 1, order).numpy().astype(np.float32),
    )


def _approximate_knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from pynndescent import NNDescent

    n = x.shape[0]
    index = NNDescent(
        x,
        n_neighbors=k,
        metric="euclidean",
        n_trees=min(64, 5 + round(n**0.5 / 20)),
        n_iters=max(5, round(np.log2(n))),
        random_state=0,
    )
    indices, dists = index.neighbor_graph
    return indices.astype(np.int64), dists.astype(np.float32)


def fuzzy_edges(
    knn_indices: np.ndarray,
    knn_dists: np.ndarray,
    min_weight_fraction: float = 0.01,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UMAP's fuzzy simplicial set of a kNN graph as directed ``(head, tail, weight)`` edges.

    The same computation as umap-learn's ``fuzzy_simplicial_set`` with its defaults
    (local_connectivity 1, set_op_mix_ratio 1; the tests check equality against it), written
    vectorised in numpy: umap-learn's numba kernels cost 10–20 s of compilation in every fresh
    process and their OpenMP thread pool, once started, slows torch's training steps ~10× on
    2 cores. Symmetrised by fuzzy union A + Aᵀ − A∘Aᵀ (both directions of every edge are
    returned, with equal weight); edges weaker than ``min_weight_fraction · max(weight)`` are
    dropped (UMAP drops those below max/n_epochs; the reference's max/3 discards most of the
    graph).
    """
    import scipy.sparse

    n, k = knn_indices.shape
    sigmas, rhos = smooth_knn_dist(knn_dists, float(k))
    rows, cols, vals = membership_strengths(knn_indices, knn_dists, sigmas, rhos)
    graph = scipy.sparse.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
    graph.eliminate_zeros()
    product = graph.multiply(graph.T)
    graph = (graph + graph.T - product).tocoo()
    graph.eliminate_zeros()
    keep = graph.data >= min_weight_fraction * graph.data.max()
    return (
        graph.row[keep].astype(np.int64),
        graph.col[keep].astype(np.int64),
        graph.data[keep].astype(np.float32),
    )


_SMOOTH_K_TOLERANCE = 1e-5
_MIN_K_DIST_SCALE = 1e-3


def smooth_knn_dist(
    knn_dists: np.ndarray, k: float, n_iter: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Per-point ``(sigma, rho)`` of UMAP (local_connectivity 1, bandwidth 1), all rows at once.

    rho = distance to the nearest non-zero neighbour; sigma from a binary search making
    sum_j exp(-(d_ij - rho) / sigma) = log2(k) over the neighbours after column 0 (self), with
    umap-learn's tolerance and its floor of 1e-3 × the mean neighbour distance.
    """
    dists = np.asarray(knn_dists, dtype=np.float64)
    n = dists.shape[0]
    target = np.log2(k)
    positive = np.where(dists > 0.0, dists, np.inf)
    rho = positive.min(axis=1)
    rho[~np.isfinite(rho)] = 0.0
    shifted = dists[:, 1:] - rho[:, None]
    # exp only of the distances beyond rho: the others count 1 and would overflow for small sigma
    beyond = np.maximum(shifted, 0.0)
    lo = np.zeros(n)
    hi = np.full(n, np.inf)
    mid = np.ones(n)
    active = np.ones(n, dtype=bool)
    for _ in range(n_iter):
        psum = np.where(shifted > 0, np.exp(-beyond / mid[:, None]), 1.0).sum(axis=1)
        active &= np.abs(psum - target) >= _SMOOTH_K_TOLERANCE
        if not active.any():
            break
        above = active & (psum > target)
        below = active & ~above
        hi = np.where(above, mid, hi)
        lo = np.where(below, mid, lo)
        mid = np.where(above, (lo + hi) / 2.0, mid)
        mid = np.where(below & np.isinf(hi), mid * 2.0, np.where(below, (lo + hi) / 2.0, mid))
    floor = _MIN_K_DIST_SCALE * np.where(rho > 0.0, dists.mean(axis=1), dists.mean())
    return np.maximum(mid, floor), rho


def membership_strengths(
    knn_indices: np.ndarray, knn_dists: np.ndarray, sigmas: np.ndarray, rhos: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed memberships w_ij = exp(-(d_ij - rho_i) / sigma_i); 1 within rho, 0 to itself."""
    n, k = knn_indices.shape
    excess = np.asarray(knn_dists, dtype=np.float64) - rhos[:, None]
    with np.errstate(divide="ignore", over="ignore"):
        vals = np.exp(-excess / sigmas[:, None])
    vals = np.where((excess <= 0.0) | (sigmas[:, None] == 0.0), 1.0, vals)
    rows = np.repeat(np.arange(n), k)
    vals = np.where(knn_indices == np.arange(n)[:, None], 0.0, vals).ravel()
    cols = knn_indices.ravel()
    valid = cols >= 0
    return rows[valid], cols[valid], vals[valid].astype(np.float32)


def spatial_edges(
    x: np.ndarray, k: int = 15, min_weight_fraction: float = 0.01
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fuzzy kNN edges ``(head, tail, weight)`` of the points ``x`` (SPEC §2.2)."""
    indices, dists = knn_graph(x, min(k, x.shape[0]))
    return fuzzy_edges(indices, dists, min_weight_fraction)


def temporal_edges(
    current: np.ndarray, memory: np.ndarray, k: int = 5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each current node to its ``k`` cosine-nearest memory nodes: ``(current, memory, weight)``.

    weight = (1 + cos) / 2, the cosine similarity mapped monotonically onto [0, 1] so it is a
    membership strength (the reference's cos/2 tops out at 0.5 and goes negative for opposed
    vectors). Memory nodes have no out-edges, so the fuzzy union A + Aᵀ − A∘Aᵀ of this bipartite
    graph is A + Aᵀ: each returned edge stands for both directions with the same weight.
    """
    if memory.shape[0] == 0:
        raise InputError("temporal edges need at least one memory node")
    if current.shape[1] != memory.shape[1]:
        raise InputError(
            f"current and memory features differ in dimension: {current.shape[1]} vs "
            f"{memory.shape[1]}"
        )
    k = min(k, memory.shape[0])
    cur = torch.nn.functional.normalize(torch.from_numpy(np.asarray(current, np.float32)), dim=1)
    mem = torch.nn.functional.normalize(torch.from_numpy(np.asarray(memory, np.float32)), dim=1)
    heads, tails, cosines = [], [], []
    for start in range(0, cur.shape[0], _BLOCK_ROWS):
        block = cur[start : start + _BLOCK_ROWS] @ mem.T
        top = torch.topk(block, k, dim=1)
        heads.append(np.repeat(np.arange(start, start + block.shape[0]), k))
        tails.append(top.indices.reshape(-1).numpy())
        cosines.append(top.values.reshape(-1).numpy())
    weight = (1.0 + np.clip(np.concatenate(cosines), -1.0, 1.0)) / 2.0
    return np.concatenate(heads), np.concatenate(tails).astype(np.int64), weight.astype(np.float32)


def sample_edges(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` edge indices with replacement, each with probability ∝ its weight."""
    if weights.size == 0 or not np.all(weights >= 0) or weights.sum() <= 0:
        raise InputError("edge weights must be non-negative with a positive sum")
    cumulative = np.cumsum(weights, dtype=np.float64)
    draws = rng.random(n) * cumulative[-1]
    return np.minimum(np.searchsorted(cumulative, draws, side="right"), weights.size - 1)
