"""Refinement of all positions over the all-point graph, and the decoder fine-tuned to them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sentrycam_widget.errors import InputError
from sentrycam_widget.metrics import trustworthiness
from sentrycam_widget.projection.autoencoder import Autoencoder
from sentrycam_widget.projection.graph import spatial_edges
from sentrycam_widget.projection.refine import fit_decoder, refine_layout
from sentrycam_widget.records import LinearHead


@pytest.fixture(scope="module")
def clusters() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=6.0, size=(4, 16))
    labels = np.arange(400) % 4
    return (centres[labels] + rng.normal(size=(400, 16))).astype(np.float32), labels


def test_refinement_turns_a_random_layout_into_a_faithful_one(clusters):
    x, _ = clusters
    start = np.random.default_rng(1).normal(scale=5.0, size=(400, 2)).astype(np.float32)
    refined = refine_layout(start, spatial_edges(x, 15), n_epochs=60, seed=0)
    assert refined.dtype == np.float32 and refined.shape == (400, 2)
    assert trustworthiness(x, start) < 0.6 < 0.9 < trustworthiness(x, refined)


def test_refinement_is_seeded_and_leaves_its_input_alone(clusters):
    x, _ = clusters
    start = np.random.default_rng(1).normal(size=(400, 2)).astype(np.float32)
    kept = start.copy()
    edges = spatial_edges(x, 15)
    a = refine_layout(start, edges, 10, seed=3)
    assert np.array_equal(a, refine_layout(start, edges, 10, seed=3))
    assert not np.array_equal(a, refine_layout(start, edges, 10, seed=4))
    assert np.array_equal(start, kept)


def test_large_sets_are_refined_in_parallel_and_seeded_on_one_thread():
    numba = pytest.importorskip("numba")
    from sentrycam_widget.projection.refine import PARALLEL_MIN_POINTS

    rng = np.random.default_rng(0)
    n = PARALLEL_MIN_POINTS + 1000
    centres = rng.normal(scale=6.0, size=(5, 8))
    x = (centres[np.arange(n) % 5] + rng.normal(size=(n, 8))).astype(np.float32)
    edges = spatial_edges(x, 10)
    start = rng.normal(scale=5.0, size=(n, 2)).astype(np.float32)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = refine_layout(start, edges, 5, seed=3)
        assert np.array_equal(a, refine_layout(start, edges, 5, seed=3))
    finally:
        numba.set_num_threads(threads)
    parallel = refine_layout(start, edges, 60, seed=3)  # every thread: not bit-reproducible
    sub = rng.choice(n, 1000, replace=False)
    assert trustworthiness(x[sub], parallel[sub]) > 0.9 > trustworthiness(x[sub], start[sub])


def test_anchoring_holds_points_near_their_previous_positions(clusters):
    x, _ = clusters
    rng = np.random.default_rng(2)
    start = rng.normal(scale=5.0, size=(400, 2)).astype(np.float32)
    anchor = rng.normal(scale=5.0, size=(400, 2)).astype(np.float32)
    edges = spatial_edges(x, 15)
    free = refine_layout(start, edges, 30, seed=0)
    held = refine_layout(start, edges, 30, seed=0, anchor=anchor, anchor_weight=0.5)
    assert np.abs(held - anchor).mean() < 0.7 * np.abs(free - anchor).mean()


def test_refinement_rejects_bad_input(clusters):
    x, _ = clusters
    edges = spatial_edges(x, 15)
    start = np.zeros((400, 2), dtype=np.float32)
    with pytest.raises(InputError, match="n_epochs >= 1"):
        refine_layout(start, edges, 0, seed=0)
    with pytest.raises(InputError, match="anchor must be"):
        refine_layout(start, edges, 5, seed=0, anchor=np.zeros((3, 2)))
    with pytest.raises(InputError, match="beyond N = 10"):
        refine_layout(start[:10], edges, 5, seed=0)


def test_decoder_fine_tune_reconstructs_the_shown_positions_and_their_predictions(clusters):
    x, labels = clusters
    rng = np.random.default_rng(3)
    positions = torch.from_numpy((labels[:, None] * 4.0 + rng.normal(size=(400, 2))).astype("f4"))
    features = torch.from_numpy(x)
    head = LinearHead(rng.normal(size=(4, 16)).astype("f4"), np.zeros(4, dtype="f4"))
    predictions = torch.from_numpy(head(x).argmax(1))
    model = Autoencoder(16, None, torch.Generator().manual_seed(0)).eval()
    encoder_before = [p.detach().clone() for p in model.encoder.parameters()]

    def round_trip() -> tuple[float, float]:
        with torch.no_grad():
            decoded = model.decode(positions)
        error = float(((decoded - features) ** 2).mean())
        kept = float((head.forward_torch(decoded).argmax(1) == predictions).float().mean())
        return error, kept

    error_before, kept_before = round_trip()
    fit_decoder(
        model, positions, features, 300, torch.Generator().manual_seed(0), lr=0.01,
        head=head, predictions=predictions, prediction_weight=1.0,
    )  # fmt: skip
    error_after, kept_after = round_trip()
    assert error_after < 0.5 * error_before
    assert kept_after > max(kept_before, 0.9)
    assert not model.training
    assert all(
        torch.equal(a, b) for a, b in zip(encoder_before, model.encoder.parameters(), strict=True)
    )
