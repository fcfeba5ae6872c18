"""Graphs the projector is trained on: spatial fuzzy kNN edges and temporal memory edges.

Spatial (SPEC §2.2): exact kNN (or pynndescent's NN-descent for large sets, optionally
warm-started from a previous graph of the same points and run on a randomized-PCA view when the
features are wide) turned into UMAP's fuzzy simplicial set by umap-learn's
``fuzzy_simplicial_set``, very weak edges dropped. Temporal
(SPEC §2.3): each current node linked to its cosine-nearest memory nodes. Edges are returned as
``(head, tail, weight)`` arrays and sampled with probability proportional to weight (not DVI's
inverse weighting). Shared with the DVI baseline.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import torch

from ..errors import InputError, RunFormatError

EXACT_KNN_MAX_POINTS = 30_000
# SentryCam's all-point graph: exact kNN up to here, NN-descent above (its ``exact_max_points``)
SENTRYCAM_EXACT_MAX_POINTS = 5000
_BLOCK_ROWS = 2048


def knn_graph(
    x: np.ndarray,
    k: int,
    init_graph: np.ndarray | None = None,
    exact_max_points: int = EXACT_KNN_MAX_POINTS,
) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours by euclidean distance, the point itself first (umap's convention).

    Returns ``(indices [N, k] int64, distances [N, k] float32)``, each row sorted by distance.
    Exact (blocked matrix products on torch) up to ``exact_max_points`` points, pynndescent's
    NN-descent above that; ``init_graph`` ([N, ≥ k] neighbour indices of the same points, e.g.
    the previous checkpoint's graph) warm-starts NN-descent, which then needs a few iterations
    instead of a cold build (measured at 50,000 × 64: 0.6 s warm against 5 s cold).
    """
    n = x.shape[0]
    if not 2 <= k <= n:
        raise InputError(f"k nearest neighbours needs 2 <= k <= N = {n}, got k = {k}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if n > exact_max_points:
        if init_graph is not None and init_graph.shape[0] != n:
            raise InputError(f"init_graph has {init_graph.shape[0]} rows but there are {n} points")
        return _approximate_knn(x, k, init_graph)
    return _exact_knn(x, k)


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


_PYNNDESCENT_MODULES = ("pynndescent_", "utils", "rp_trees", "distances", "graph_utils")


@functools.cache
def cache_pynndescent_kernels() -> int:
    """Turn on numba's on-disk cache for pynndescent's module-level kernels; returns how many.

    pynndescent compiles most of its kernels without ``cache=True``, so every fresh process
    paid ≈ 40 s of CPU compiling them before its first NN-descent (measured on the 2-core
    machine; 17 s with this cache filled, the rest being the two kernels that take the metric
    as an argument, which numba cannot cache; its warning about them is silenced). Numba's
    ``Dispatcher.enable_caching`` keeps the compiled code next to pynndescent's sources (or
    under ``NUMBA_CACHE_DIR``); the results are the same code, only loaded instead of compiled.
    """
    import importlib

    from numba.core.registry import CPUDispatcher

    enabled = 0
    for name in _PYNNDESCENT_MODULES:
        module = importlib.import_module(f"pynndescent.{name}")
        for kernel in vars(module).values():
            if isinstance(kernel, CPUDispatcher) and type(kernel._cache).__name__ == "NullCache":
                kernel.enable_caching()
                enabled += 1
    # numba says so, once per process, for the kernels whose compiled code it cannot keep
    warnings.filterwarnings("ignore", message='Cannot cache compiled function "nn_descent')
    return enabled


def _approximate_knn(
    x: np.ndarray, k: int, init_graph: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    cache_pynndescent_kernels()
    from pynndescent import NNDescent

    n = x.shape[0]
    options: dict = {"n_trees": min(64, 5 + round(n**0.5 / 20))}
    if init_graph is not None:
        # the previous graph replaces the random-projection forest as the starting point
        options = {"n_trees": 1, "init_graph": np.ascontiguousarray(init_graph[:, :k], np.int32)}
    index = NNDescent(
        x,
        n_neighbors=k,
        metric="euclidean",
        n_iters=max(5, round(np.log2(n))),
        random_state=0,
        low_memory=True,
        compressed=True,
        **options,
    )
    indices, dists = index.neighbor_graph
    return _self_first(indices.astype(np.int64), dists.astype(np.float32))


def _self_first(indices: np.ndarray, dists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows with the point itself in column 0 (NN-descent may rank a duplicate first)."""
    rows = np.arange(indices.shape[0])
    if np.array_equal(indices[:, 0], rows):
        return indices, dists
    for i in np.flatnonzero(indices[:, 0] != rows):
        others = indices[i] != i
        kept = np.concatenate([[i], indices[i][others]])[: indices.shape[1]]
        indices[i] = kept
        dists[i] = np.concatenate([[0.0], dists[i][others]])[: indices.shape[1]]
    return indices, dists


def pca_view(
    x: np.ndarray, dims: int, seed: int = 0, previous: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``x`` [N, D] centred and projected on its top-``dims`` principal subspace, and the basis.

    Used to search neighbours of wide features faster; distances in the view approximate the
    full ones (measured at 50,000 × 512 → 64: the graph's trustworthiness ceiling unchanged).
    The basis is :func:`pca_basis`'s (warm-started from ``previous``); returns ``(x as float32,
    None)`` when ``D <= dims``.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape[1] <= dims:
        return x, None
    centred = _centred(x)
    basis = _principal_basis(centred, dims, seed, previous)
    return (centred @ torch.from_numpy(basis)).numpy(), basis


def pca_basis(
    x: np.ndarray, dims: int, seed: int = 0, previous: np.ndarray | None = None
) -> np.ndarray | None:
    """Orthonormal basis [D, dims] of the top-``dims`` principal subspace of ``x`` [N, D].

    Randomized PCA (two power iterations from a seeded random start) or, given the
    ``previous`` checkpoint's basis of the same width, one power iteration from it: features
    drift little between checkpoints, so the old subspace is already close (neighbour search
    only needs the subspace, not the order of the components). None when ``D <= dims`` (the
    features are narrow enough to search as they are).
    """
    if x.shape[1] <= dims:
        return None
    return _principal_basis(_centred(np.ascontiguousarray(x, np.float32)), dims, seed, previous)


def _centred(x: np.ndarray) -> torch.Tensor:
    data = torch.from_numpy(x)
    return data - data.mean(0, keepdim=True)


def _principal_basis(
    centred: torch.Tensor, dims: int, seed: int, previous: np.ndarray | None
) -> np.ndarray:
    if previous is not None and previous.shape == (centred.shape[1], dims):
        start = torch.from_numpy(np.ascontiguousarray(previous, dtype=np.float32))
        return torch.linalg.qr(centred.T @ (centred @ start)).Q.numpy()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, _, v = torch.pca_lowrank(centred, q=dims, center=False, niter=2)
    return np.ascontiguousarray(v.numpy())


def search_state(
    state: dict, method: str, n_points: int, n_features: int, dims: int | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The stored kNN graph and PCA basis that warm-start the next neighbour search, checked.

    Returns ``(knn_indices [N, k] | None, pca_basis [D, dims] | None)`` from a projector's
    saved ``state``; raises :class:`RunFormatError` when they do not fit the run's N and D.
    """
    knn, basis = state.get("knn_indices"), state.get("pca_basis")
    if knn is not None:
        knn = np.asarray(knn, dtype=np.int64)
        if knn.ndim != 2 or knn.shape[0] != n_points or knn.max() >= n_points:
            raise RunFormatError(
                f"{method} state's kNN graph has shape {knn.shape}, not one row for "
                f"each of the run's {n_points} probe points"
            )
    if basis is not None:
        basis = np.asarray(basis, dtype=np.float32)
        if basis.shape != (n_features, dims):
            raise RunFormatError(
                f"{method} state's PCA basis has shape {basis.shape}, not ({n_features}, {dims})"
            )
    return knn, basis


def fuzzy_edges(
    knn_indices: np.ndarray,
    knn_dists: np.ndarray,
    min_weight_fraction: float = 0.01,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UMAP's fuzzy simplicial set of a kNN graph as directed ``(head, tail, weight)`` edges.

    umap-learn's ``fuzzy_simplicial_set`` on the precomputed neighbours, with its defaults
    (local_connectivity 1, fuzzy union A + Aᵀ − A∘Aᵀ; both directions of every edge are
    returned, with equal weight). Its first call in a process loads umap-learn and its numba
    kernels (≈ 6 s with a warm cache, which ``python -m sentrycam_widget warmup`` fills); later
    calls take milliseconds. Edges weaker than ``min_weight_fraction · max(weight)`` are dropped
    (UMAP drops those below max/n_epochs; the reference's max/3 discards most of the graph).
    """
    from umap.umap_ import fuzzy_simplicial_set

    n, k = knn_indices.shape
    graph, _, _ = fuzzy_simplicial_set(
        np.empty((n, 0), dtype=np.float32),  # only its row count is read when kNN are given
        k,
        np.random.RandomState(0),
        "euclidean",
        knn_indices=np.ascontiguousarray(knn_indices, dtype=np.int64),
        knn_dists=np.ascontiguousarray(knn_dists, dtype=np.float32),
    )
    graph = graph.tocoo()  # umap-learn has already dropped explicit zeros
    keep = graph.data >= min_weight_fraction * graph.data.max()
    return (
        graph.row[keep].astype(np.int64),
        graph.col[keep].astype(np.int64),
        graph.data[keep].astype(np.float32),
    )


def warm_up(n_points: int = 0, exact_max_points: int = SENTRYCAM_EXACT_MAX_POINTS) -> None:
    """Load umap-learn's fuzzy-set kernels (≈ 6 s once per process) and the refinement kernel
    now, e.g. while training runs; for probe sets above ``exact_max_points`` points also
    compile pynndescent's NN-descent, cold and warm-started (≈ 17 s of CPU once per process)."""
    from .refine import refine_layout

    points = np.arange(8, dtype=np.float32).reshape(4, 2)
    refine_layout(points, fuzzy_edges(*knn_graph(points, 3)), 1, seed=0)
    if n_points > exact_max_points:
        x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
        previous, _ = knn_graph(x, 5, exact_max_points=16)
        knn_graph(x, 5, init_graph=previous, exact_max_points=16)


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
