"""Decision background: boundary cells between known classes, margins, extent and PPR helper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sentrycam_widget.projection.background import (
    decision_background,
    grid_points,
    logit_margin,
    margin_alpha,
    reconstruction_predictions,
    square_extent,
)
from sentrycam_widget.records import LinearHead

# logits (x, -x, -1): class 0 right of x = 0, class 1 left of it; margin 2|x| / (|x| + 1)
# for |x| <= 1, so cells with |x| < 0.15 / 1.85 ≈ 0.081 are boundary
_HEAD = LinearHead(np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]]), np.array([0.0, 0.0, -1.0]))


def _identity(y: torch.Tensor) -> torch.Tensor:
    return y


def test_background_paints_boundary_white_and_each_side_in_its_class():
    resolution = 101
    background = decision_background(_identity, _HEAD, (-1.0, 1.0, -1.0, 1.0), resolution)
    xs = np.linspace(-1.0, 1.0, resolution)
    assert background.classes.shape == background.alpha.shape == (resolution, resolution)
    near = np.abs(xs) < 0.075
    far_right, far_left = xs > 0.1, xs < -0.1
    assert np.all(background.alpha[:, near] == 0)
    assert np.all(background.alpha[:, far_right | far_left] > 0)
    assert np.all(background.classes[:, far_right] == 0)
    assert np.all(background.classes[:, far_left] == 1)
    margin = 2 * np.abs(xs) / (np.abs(xs) + 1)
    expected = np.where(margin >= 0.15, np.round(255 * 0.9 * margin / margin.max()), 0)
    assert np.array_equal(background.alpha[0], expected.astype(np.uint8))
    assert background.alpha.max() == round(255 * 0.9)


def test_rows_run_bottom_to_top():
    # a head that depends on y only: class 0 above y = 0
    head = LinearHead(np.array([[0.0, 1.0], [0.0, -1.0], [0.0, 0.0]]), np.array([0.0, 0.0, -1.0]))
    background = decision_background(_identity, head, (-1.0, 1.0, -1.0, 1.0), 21)
    assert np.all(background.classes[0] == 1) and np.all(background.classes[-1] == 0)
    assert np.allclose(grid_points((0.0, 1.0, 2.0, 3.0), 3)[[0, 2, 6]], [[0, 2], [1, 2], [0, 3]])


def test_margin_and_alpha_rules():
    logits = torch.tensor([[3.0, 1.0, 0.0], [1.0, 1.0, 1.0], [2.0, 1.9, 0.0]])
    assert torch.allclose(logit_margin(logits), torch.tensor([2 / 3, 0.0, 0.05]))
    alpha = margin_alpha(np.array([0.1, 0.5, 1.0]))
    assert alpha.tolist() == [0, round(255 * 0.9 * 0.5), round(255 * 0.9)]


def test_extent_is_padded_and_square():
    points = np.array([[0.0, 0.0], [10.0, 2.0]], dtype=np.float32)
    x0, x1, y0, y1 = square_extent(points)
    assert (x0, x1) == (y0, y1)
    assert x0 == pytest.approx(-1.0) and x1 == pytest.approx(11.0)


def test_reconstruction_predictions_apply_the_head_after_the_round_trip():
    features = torch.tensor([[0.5, 0.0], [-0.5, 0.0], [0.5, 0.0]])
    flip = lambda y: -y  # noqa: E731
    assert reconstruction_predictions(_identity, _identity, _HEAD, features).tolist() == [0, 1, 0]
    assert reconstruction_predictions(flip, _identity, _HEAD, features).tolist() == [1, 0, 1]
