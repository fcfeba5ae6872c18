"""Warm-up: compile umap-learn's cacheable numba code into numba's on-disk cache, once per install."""

from __future__ import annotations

import time

import numpy as np

# above this many points umap-learn switches its kNN search to pynndescent
PYNNDESCENT_FROM = 4096


def warmup(*, pynndescent: bool = False, seed: int = 0) -> dict[str, float]:
    """Compile the cacheable numba code so the first frame of a process is fast.

    umap-learn's fuzzy-set kernels (SentryCam's graph and the UMAP baseline) and SentryCam's own
    layout-refinement kernel go into numba's on-disk cache, and so do pynndescent's kernels that
    can be cached (:func:`~sentrycam_widget.projection.graph.cache_pynndescent_kernels`; the two
    that take the metric as an argument still compile in every fresh process). The tiny UMAP
    fit stays below the size where umap-learn switches to pynndescent. ``python -m sentrycam_widget warmup`` (and
    ``scripts/setup.sh``) run it.

    Parameters
    ----------
    pynndescent
        Also fit UMAP once on more than :data:`PYNNDESCENT_FROM` points, compiling pynndescent
        in this process (benchmarks do this before timing large runs).
    seed
        Seed of the random warm-up data and of the fits.

    Returns
    -------
    dict of str to float
        Seconds per step: ``import_s``, ``fuzzy_simplicial_set_s``, ``layout_sgd_s``,
        ``pynndescent_s`` (its cacheable kernels), ``umap_fit_s`` and, with
        ``pynndescent``, ``pynndescent_fit_s``.
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    import umap
    import umap.umap_

    lap("import_s")
    data = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    distances = np.sqrt(((data[:, None] - data[None]) ** 2).sum(-1))
    knn_indices = np.argsort(distances, axis=1)[:, :10]
    knn_dists = np.take_along_axis(distances, knn_indices, axis=1)
    umap.umap_.fuzzy_simplicial_set(
        data,
        10,
        np.random.RandomState(0),
        "euclidean",
        knn_indices=knn_indices,
        knn_dists=knn_dists,
    )
    lap("fuzzy_simplicial_set_s")
    from .projection.refine import refine_layout

    heads = np.arange(200)
    refine_layout(data[:, :2], (heads, (heads + 1) % 200, np.ones(200, np.float32)), 2, seed=seed)
    lap("layout_sgd_s")
    from .projection.graph import knn_graph  # turns on pynndescent's on-disk cache first

    points = np.random.default_rng(seed).normal(size=(PYNNDESCENT_FROM + 104, 8))
    knn_graph(points.astype(np.float32), 15, exact_max_points=PYNNDESCENT_FROM)
    lap("pynndescent_s")
    umap.UMAP(n_neighbors=10, n_epochs=5, random_state=0, n_jobs=1).fit_transform(data)
    lap("umap_fit_s")
    if pynndescent:
        large = np.random.default_rng(seed).normal(size=(PYNNDESCENT_FROM + 104, 8))
        umap.UMAP(n_neighbors=15, min_dist=0.1, n_epochs=5, random_state=seed).fit_transform(
            large.astype(np.float32)
        )
        lap("pynndescent_fit_s")
    return timings
