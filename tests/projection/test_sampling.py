"""Density-guided sampling keeps more of low-dimensional manifolds and never drops a class."""

from __future__ import annotations

import numpy as np
import pytest

from sentrycam_widget.errors import InputError
from sentrycam_widget.projection.sampling import choose_ratio, density_guided_sample


def _sheet(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Points on a flat 2-D sheet embedded linearly in ``dim`` dimensions."""
    return rng.uniform(size=(n, 2)) @ rng.normal(size=(2, dim))


def test_low_intrinsic_dimension_keeps_a_larger_ratio_than_a_high_dimensional_blob():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 4000)
    sheet = density_guided_sample(
        _sheet(4000, 50, rng), labels, np.random.default_rng(1), min_samples=0
    )
    blob = density_guided_sample(
        rng.normal(size=(4000, 50)), labels, np.random.default_rng(1), min_samples=0
    )
    # rho(r) ~ r^(1/d): on the 2-D sheet no ratio loses little enough density (largest kept);
    # in 50-D the kNN radius barely grows, so the smallest ratio already qualifies
    assert sheet.ratio == pytest.approx(0.5)
    assert blob.ratio == pytest.approx(0.1)
    assert sheet.size > 4 * blob.size
    assert np.all(np.diff(sheet.rho) > 0)  # density recovers as the subsample grows
    assert np.all(blob.slope <= 0.25) and np.all(sheet.slope > 0.25)


def test_choose_ratio_takes_the_smallest_qualifying_ratio_or_the_largest():
    ratios = np.array([0.1, 0.2, 0.3])
    assert choose_ratio(ratios, np.array([0.4, 0.2, 0.1]), 0.25) == pytest.approx(0.2)
    assert choose_ratio(ratios, np.array([0.4, 0.3, 0.3]), 0.25) == pytest.approx(0.3)


def test_small_probe_sets_use_every_point_and_the_floor_holds():
    rng = np.random.default_rng(0)
    labels = np.arange(1500) % 3
    small = density_guided_sample(rng.normal(size=(1500, 20)), labels, rng, min_samples=2000)
    assert np.array_equal(small.indices, np.arange(1500))
    labels = np.arange(5000) % 3
    floored = density_guided_sample(rng.normal(size=(5000, 50)), labels, rng, min_samples=1200)
    assert floored.ratio == pytest.approx(0.1)
    assert floored.size == 1200
    assert np.unique(floored.indices).size == floored.size


def test_every_class_is_represented_even_a_tiny_one():
    rng = np.random.default_rng(0)
    labels = np.zeros(4000, dtype=np.int64)
    labels[:5] = 1  # 5 points of class 1, 20 of class 2
    labels[5:25] = 2
    sample = density_guided_sample(rng.normal(size=(4000, 50)), labels, rng, min_samples=0)
    counts = np.bincount(labels[sample.indices], minlength=3)
    assert counts[1] == 5 and counts[2] >= 16


def test_sampling_is_deterministic_for_a_seeded_generator():
    rng = np.random.default_rng(3)
    x, labels = rng.normal(size=(3000, 30)), np.arange(3000) % 2
    a = density_guided_sample(x, labels, np.random.default_rng(5), min_samples=0)
    b = density_guided_sample(x, labels, np.random.default_rng(5), min_samples=0)
    c = density_guided_sample(x, labels, np.random.default_rng(6), min_samples=0)
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.rho, b.rho)
    assert not np.array_equal(a.indices, c.indices)


def test_mismatched_labels_are_rejected():
    with pytest.raises(InputError, match="labels"):
        density_guided_sample(np.zeros((10, 3)), np.zeros(9), np.random.default_rng(0))


def test_the_density_curve_is_skipped_when_the_floor_decides_the_size():
    rng = np.random.default_rng(0)
    labels = np.arange(3000) % 3
    sample = density_guided_sample(rng.normal(size=(3000, 10)), labels, rng, min_samples=2000)
    assert sample.size == 2000 and sample.ratio == pytest.approx(2000 / 3000)
    assert sample.ratios.size == 0
