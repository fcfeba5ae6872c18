"""Spatial and temporal graphs: exact kNN, umap-learn's fuzzy set, weights, sampling ∝ weight."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse

from sentrycam_widget.errors import InputError
from sentrycam_widget.projection.graph import (
    fuzzy_edges,
    knn_graph,
    pca_basis,
    pca_view,
    sample_edges,
    spatial_edges,
    temporal_edges,
)


@pytest.fixture(scope="module")
def points() -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(3, 20))
    return (centres[np.arange(600) % 3] + rng.normal(size=(600, 20))).astype(np.float32)


def test_knn_is_exact_against_brute_force_with_self_first(points):
    indices, dists = knn_graph(points, 15)
    full = np.sqrt(((points[:, None, :].astype(np.float64) - points[None]) ** 2).sum(-1))
    expected = np.argsort(full, axis=1, kind="stable")[:, :15]
    assert np.array_equal(indices, expected)
    assert np.allclose(dists, np.take_along_axis(full, expected, axis=1), atol=1e-5)
    assert np.array_equal(indices[:, 0], np.arange(600)) and np.all(dists[:, 0] == 0)


def test_knn_puts_self_first_among_exact_duplicates():
    x = np.zeros((20, 4), dtype=np.float32)
    indices, _ = knn_graph(x, 5)
    assert np.array_equal(indices[:, 0], np.arange(20))


def test_fuzzy_edges_handle_duplicate_points_without_warnings():
    # 4 copies of each point: 3 neighbours at distance 0 sit below rho
    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=(50, 6)), 4, axis=0).astype(np.float32)
    indices, dists = knn_graph(x, 15)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        head, tail, weight = fuzzy_edges(indices, dists, min_weight_fraction=0.0)
    assert np.all(np.isfinite(weight)) and np.all((weight > 0) & (weight <= 1))
    # each copy is joined to its 3 duplicates with full membership
    same = np.all(x[head] == x[tail], axis=1)
    assert same.sum() == 200 * 3 and np.all(weight[same] == 1.0)


def test_fuzzy_edges_are_umap_learns_fuzzy_simplicial_set(points):
    from umap.umap_ import fuzzy_simplicial_set

    indices, dists = knn_graph(points, 15)
    head, tail, weight = fuzzy_edges(indices, dists, min_weight_fraction=0.0)
    ours = scipy.sparse.coo_matrix((weight, (head, tail)), shape=(600, 600)).tocsr()
    reference, _, _ = fuzzy_simplicial_set(
        points, 15, np.random.RandomState(0), "euclidean", knn_indices=indices, knn_dists=dists
    )
    reference = reference.tocsr()
    assert ours.nnz == reference.nnz
    assert abs(ours - reference).max() == 0.0


def test_spatial_weights_are_symmetric_in_unit_interval_and_weak_edges_dropped(points):
    head, tail, weight = spatial_edges(points, 15, min_weight_fraction=0.05)
    assert np.all((weight > 0) & (weight <= 1)) and weight.max() == pytest.approx(1.0)
    assert weight.min() >= 0.05 * weight.max()
    matrix = scipy.sparse.coo_matrix((weight, (head, tail)), shape=(600, 600)).tocsr()
    assert abs(matrix - matrix.T).max() < 1e-6
    assert np.all(head != tail)
    _, _, everything = spatial_edges(points, 15, min_weight_fraction=0.0)
    assert everything.size > weight.size


def test_edge_sampling_is_proportional_to_weight():
    weights = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)
    draws = sample_edges(weights, 200_000, np.random.default_rng(0))
    frequencies = np.bincount(draws, minlength=4) / draws.size
    assert np.allclose(frequencies, weights / weights.sum(), atol=0.005)
    assert np.all(sample_edges(np.array([0.0, 1.0, 0.0]), 1000, np.random.default_rng(1)) == 1)


def test_temporal_edges_link_to_cosine_nearest_memory_with_similarity_weights():
    rng = np.random.default_rng(0)
    memory = rng.normal(size=(40, 8)).astype(np.float32)
    current = memory[:10] * 3.0 + 0.01 * rng.normal(size=(10, 8)).astype(np.float32)
    heads, tails, weights = temporal_edges(current, memory, k=5)
    assert heads.shape == tails.shape == weights.shape == (50,)
    assert np.array_equal(tails[::5], np.arange(10))  # own memory copy is the nearest by cosine
    cos = (current[heads] * memory[tails]).sum(1) / (
        np.linalg.norm(current[heads], axis=1) * np.linalg.norm(memory[tails], axis=1)
    )
    assert np.allclose(weights, (1 + cos) / 2, atol=1e-5)
    assert np.all((weights >= 0) & (weights <= 1))


def test_bad_graph_inputs_are_rejected():
    with pytest.raises(InputError, match="k nearest"):
        knn_graph(np.zeros((5, 2), dtype=np.float32), 6)
    with pytest.raises(InputError, match="dimension"):
        temporal_edges(np.zeros((3, 4)), np.ones((3, 5)))
    with pytest.raises(InputError, match="weights"):
        sample_edges(np.zeros(3), 5, np.random.default_rng(0))


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([np.isin(found[i], exact[i]).mean() for i in range(exact.shape[0])]))


def test_nn_descent_above_the_exact_limit_finds_the_neighbours_with_self_first(points):
    exact, _ = knn_graph(points, 15)
    approx, dists = knn_graph(points, 15, exact_max_points=100)
    assert _recall(approx, exact) > 0.95
    assert np.array_equal(approx[:, 0], np.arange(600)) and np.all(dists[:, 0] == 0)


def test_nn_descent_warm_started_from_the_exact_graph_keeps_it(points):
    exact, _ = knn_graph(points, 15)
    warm, _ = knn_graph(points, 15, init_graph=exact, exact_max_points=100)
    assert _recall(warm, exact) > 0.99


def test_warm_start_graph_must_cover_every_point(points):
    exact, _ = knn_graph(points, 15)
    with pytest.raises(InputError, match="init_graph has 599 rows"):
        knn_graph(points, 15, init_graph=exact[:-1], exact_max_points=100)


def test_pca_view_keeps_the_distances_of_data_in_a_low_dimensional_subspace():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(400, 6)) @ rng.normal(size=(6, 80))).astype(np.float32)
    view, basis = pca_view(x, 8)
    assert basis.shape == (80, 8) and view.shape == (400, 8)
    assert np.array_equal(basis, pca_basis(x, 8))
    full = np.linalg.norm(x[:50, None] - x[None, :50], axis=-1)
    reduced = np.linalg.norm(view[:50, None] - view[None, :50], axis=-1)
    assert np.allclose(full, reduced, rtol=1e-3, atol=1e-2)
    assert pca_basis(x, 100) is None  # already narrow enough: searched as it is
    same, none = pca_view(x, 100)
    assert none is None and np.array_equal(same, x)


def test_pca_basis_warm_started_from_the_previous_one_tracks_a_drifting_subspace():
    rng = np.random.default_rng(2)
    old = rng.normal(size=(6, 80))
    drifted = old + 0.2 * rng.normal(size=(6, 80))
    codes = rng.normal(size=(500, 6)) * np.arange(6, 0, -1)
    noise = 0.01 * rng.normal(size=(500, 80))
    previous = pca_basis((codes @ old + noise).astype(np.float32), 6)
    x = (codes @ drifted + noise).astype(np.float32)
    warm = pca_basis(x, 6, previous=previous)
    assert np.allclose(warm.T @ warm, np.eye(6), atol=1e-4)
    # the warm basis spans the new subspace: projecting onto it keeps (nearly) all variance
    centred = x - x.mean(0)
    kept = np.linalg.norm(centred @ warm) ** 2 / np.linalg.norm(centred) ** 2
    stale = np.linalg.norm(centred @ previous) ** 2 / np.linalg.norm(centred) ** 2
    assert kept > 0.999 and kept > stale


def test_pynndescent_kernels_keep_their_compiled_code_on_disk():
    import warnings

    import pynndescent.pynndescent_ as nnd

    from sentrycam_widget.projection.graph import cache_pynndescent_kernels, knn_graph

    assert cache_pynndescent_kernels() > 0 and cache_pynndescent_kernels() > 0  # done once
    assert type(nnd.generate_leaf_updates._cache).__name__ != "NullCache"
    x = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        approximate, _ = knn_graph(x, 5, exact_max_points=100)
    assert not [w for w in caught if "Cannot cache" in str(w.message)]  # not shown to users
    exact, _ = knn_graph(x, 5)
    assert (approximate == exact).mean() > 0.95


def test_warm_up_compiles_nn_descent_only_for_probe_sets_that_need_it():
    import pynndescent.pynndescent_ as nnd

    from sentrycam_widget.projection.graph import warm_up

    before = len(nnd.nn_descent.signatures)
    warm_up(n_points=100)  # exact kNN territory: pynndescent is not touched
    assert len(nnd.nn_descent.signatures) == before
    warm_up(n_points=50_000)
    assert len(nnd.nn_descent.signatures) >= 1  # compiled before the first large frame
