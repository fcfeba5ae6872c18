"""Working memory: exponential look-back, frozen positions, drift margins in layout units."""

from __future__ import annotations

import numpy as np
import pytest

from sentrycam_widget.projection.memory import (
    MARGIN_LAYOUT_FRACTION,
    MemoryBank,
    drift_score,
    layout_scale,
    memory_epochs,
    remember,
)


def test_memory_epochs_are_t_minus_1_and_t_minus_1_minus_powers_of_two():
    assert memory_epochs(10) == [9, 8, 7, 5, 1]
    assert memory_epochs(34) == [33, 32, 31, 29, 25, 17, 1]
    assert memory_epochs(2) == [1, 0]
    assert memory_epochs(1) == [0]
    assert memory_epochs(0) == []


def test_remembered_points_keep_their_features_and_frozen_frame_positions():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2000, 8)).astype(np.float32)
    embedding = rng.normal(size=(2000, 2)).astype(np.float32)
    epoch = remember(3, features, embedding, seed=0)
    assert epoch.point_ids.size == 100  # 5 %
    assert np.array_equal(epoch.features, features[epoch.point_ids])
    assert np.array_equal(epoch.frozen, embedding[epoch.point_ids])
    again = remember(3, features, embedding, seed=0)
    other = remember(4, features, embedding, seed=0)
    assert np.array_equal(again.point_ids, epoch.point_ids)
    assert not np.array_equal(other.point_ids, epoch.point_ids)


def test_small_probe_sets_keep_a_floor_of_points():
    x = np.zeros((300, 4), dtype=np.float32)
    assert remember(0, x, np.zeros((300, 2)), seed=0, min_points=50).point_ids.size == 50
    assert remember(0, x[:30], np.zeros((30, 2)), seed=0, min_points=50).point_ids.size == 30


def test_drift_score_is_clipped_to_its_range():
    zeros, ones = np.zeros(5), np.ones(5)
    assert drift_score(zeros, ones, zeros, ones) == pytest.approx(0.1)
    assert drift_score(10 * ones, ones, zeros, ones) == pytest.approx(1.0)
    middle = drift_score(0.5 * ones, ones, zeros, ones)  # |0.5| / (sqrt(2) + eps)
    assert middle == pytest.approx(0.5 / (np.sqrt(2) + 5e-4))


def test_memory_for_t_uses_exactly_the_memory_epochs_with_margins_in_layout_units():
    rng = np.random.default_rng(0)
    bank = MemoryBank()
    for index in range(12):
        embedding = (index + 1) * rng.normal(size=(400, 2))
        bank.add(remember(index, rng.normal(size=(400, 6)) + 0.1 * index, embedding, seed=0))
    current = rng.normal(size=(400, 6)) + 1.2
    memory = bank.memory_for(12, current)
    assert sorted(set(memory.epochs.tolist())) == [3, 7, 9, 10, 11]
    assert memory.size == 5 * 50
    for index in (3, 7, 9, 10, 11):
        epoch = bank.get(index)
        rows = memory.epochs == index
        assert np.array_equal(memory.frozen[rows], epoch.frozen)
        delta = drift_score(current.mean(0), current.var(0), epoch.mean, epoch.var)
        assert 0.1 <= delta <= 1.0
        expected = delta * MARGIN_LAYOUT_FRACTION * epoch.scale
        assert np.allclose(memory.margins[rows], expected, rtol=1e-5)
    assert bank.memory_for(0, current) is None


def test_layout_scale_is_the_rms_radius():
    square = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]]) + 5.0
    assert layout_scale(square) == pytest.approx(np.sqrt(2.0))
    assert layout_scale(3 * square) == pytest.approx(3 * np.sqrt(2.0))
