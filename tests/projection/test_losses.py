"""Losses: UMAP's (a, b), cross-entropy targets and negatives, scale of reconstruction, anchor hinge."""

from __future__ import annotations

import math

import pytest
import torch

from sentrycam_widget.projection.losses import (
    UMAP_A,
    UMAP_B,
    anchor_hinge,
    low_dim_similarity,
    reconstruction_loss,
    umap_cross_entropy,
)


@pytest.mark.slow  # imports umap-learn (numba), ~5-10 s on 2 busy cores
def test_hard_coded_curve_parameters_are_umap_learns_for_min_dist_0_1():
    from umap.umap_ import find_ab_params

    a, b = find_ab_params(1.0, 0.1)
    assert abs(UMAP_A - a) < 1e-6 * a and abs(UMAP_B - b) < 1e-6 * b
    assert low_dim_similarity(torch.tensor([1.0])).item() == pytest.approx(1 / (1 + a))


def test_cross_entropy_is_low_for_close_positives_far_negatives_and_high_otherwise():
    generator = torch.Generator().manual_seed(0)
    # 50 tight pairs spread far apart: positives near, shuffled negatives (mostly) far
    centres = 50.0 * torch.randn(50, 2, generator=generator)
    good = umap_cross_entropy(centres, centres + 0.01, generator)
    collapsed = umap_cross_entropy(torch.zeros(50, 2), torch.zeros(50, 2), generator)
    scattered = umap_cross_entropy(centres, centres.flip(0), generator)
    assert good < 0.1
    # all pairs at distance 0: positives cost 0, each negative -log(1e-4) (q clamped)
    assert collapsed.item() == pytest.approx(5 / 6 * -math.log(1e-4), rel=1e-3)
    assert scattered > 1.0


def test_reconstruction_and_anchor_hinge():
    x = torch.zeros(4, 3)
    assert reconstruction_loss(x, x + 2.0).item() == pytest.approx(4.0)
    frozen = torch.zeros(3, 2)
    moved = torch.tensor([[0.05, 0.0], [0.3, 0.4], [3.0, 4.0]])  # distances 0.05, 0.5, 5
    margins = torch.tensor([0.1, 0.1, 1.0])
    assert anchor_hinge(moved, frozen, margins).item() == pytest.approx((0.0 + 0.4 + 4.0) / 3)
