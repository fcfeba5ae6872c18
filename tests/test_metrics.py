"""Faithfulness metrics (SPEC §4) on constructed layouts with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.manifold import trustworthiness as sk_trustworthiness

from sentrycam_widget.errors import InputError
from sentrycam_widget.metrics import (
    continuity,
    eval_indices,
    frame_metrics,
    knn_count_self,
    knn_preservation,
    prediction_preservation,
    temporal_metrics,
    trustworthiness,
)
from sentrycam_widget.records import Checkpoint, Frame


def _planar_data_in_10d(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """2-D data isometrically embedded in 10-D, and its first two principal components."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2)) * np.array([3.0, 1.0])
    basis, _ = np.linalg.qr(rng.normal(size=(10, 2)))
    X = z @ basis.T + 5.0
    centred = X - X.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return X, centred @ vt[:2].T


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [5, 15])
def test_trustworthiness_equals_sklearn(seed, k):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 12))
    Y = X[:, :2] + 0.5 * rng.normal(size=(300, 2))
    assert trustworthiness(X, Y, k) == pytest.approx(
        sk_trustworthiness(X, Y, n_neighbors=k), abs=1e-12
    )


def test_continuity_is_trustworthiness_with_roles_swapped():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 8))
    Y = X[:, :2] + rng.normal(size=(200, 2))
    assert continuity(X, Y, 10) == pytest.approx(
        sk_trustworthiness(Y, X, n_neighbors=10), abs=1e-12
    )


def test_isometric_layout_scores_perfectly():
    X, Y = _planar_data_in_10d(400, seed=0)
    assert trustworthiness(X, Y, 15) == pytest.approx(1.0)
    assert continuity(X, Y, 15) == pytest.approx(1.0)
    assert knn_preservation(X, Y, 15) == pytest.approx(1.0)
    assert knn_count_self(X, Y, 15) == pytest.approx(15.0)


def test_random_layout_scores_chance():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(600, 10))
    Y = rng.normal(size=(600, 2))
    assert 0.45 < trustworthiness(X, Y, 10) < 0.55
    assert 0.45 < continuity(X, Y, 10) < 0.55
    assert knn_preservation(X, Y, 10) < 0.05
    assert knn_count_self(X, Y, 10) < 1.5


def test_folding_hurts_trustworthiness_more_than_continuity():
    """Folding a strip onto itself glues far-apart points (false neighbours), tears nothing."""
    rng = np.random.default_rng(5)
    strip = np.column_stack([rng.uniform(-1, 1, 500), rng.uniform(0, 0.1, 500)])
    basis, _ = np.linalg.qr(rng.normal(size=(10, 2)))
    X = strip @ basis.T
    Y = np.column_stack([np.abs(strip[:, 0]), strip[:, 1]])
    t, c = trustworthiness(X, Y, 10), continuity(X, Y, 10)
    assert c > 0.95
    assert t < c - 0.1
    assert trustworthiness(Y, X, 10) == pytest.approx(c)


def test_knn_preservation_counts_shared_neighbours_exactly():
    # 40 points on a line; the layout moves the first half far to the right, so only the two
    # points at the cut (19 and 20) lose one of their 2 nearest neighbours: 78 / 80 kept.
    x = np.arange(40, dtype=float)[:, None]
    y = np.column_stack([np.where(x[:, 0] < 20, x[:, 0] + 100, x[:, 0]), np.zeros(40)])
    assert knn_preservation(x, y, 2) == pytest.approx(78 / 80)
    assert knn_count_self(x, y, 3) == pytest.approx(1 + 78 / 40)


def test_prediction_preservation_on_constructed_arrays():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.1, 0.2]])
    assert prediction_preservation(np.array([0, 1, 0, 1]), logits) == pytest.approx(1.0)
    assert prediction_preservation(np.array([0, 0, 1, 1]), logits) == pytest.approx(0.5)
    with pytest.raises(InputError, match="recon_pred"):
        prediction_preservation(np.array([0, 1]), logits)


def test_bad_input_is_rejected_with_a_clear_message():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(50, 5)), rng.normal(size=(50, 2))
    with pytest.raises(InputError, match="same number of points"):
        trustworthiness(X, Y[:40], 5)
    with pytest.raises(InputError, match="smaller than the number of points"):
        knn_preservation(X, Y, 50)
    with pytest.raises(InputError, match="k < n / 2"):
        continuity(X, Y, 30)
    Y_nan = Y.copy()
    Y_nan[3, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        trustworthiness(X, Y_nan, 5)


def _checkpoint_and_frame(X, Y, recon_pred=None):
    labels = np.arange(X.shape[0]) % 3
    logits = np.eye(3)[labels] * 2.0
    ckpt = Checkpoint(index=0, epoch=1, features=X, labels=labels, logits=logits)
    frame = Frame(method="test", index=0, epoch=1, embedding=Y, recon_pred=recon_pred)
    return ckpt, frame


def test_frame_metrics_keys_values_and_ppr():
    X, Y = _planar_data_in_10d(300, seed=1)
    recon = np.arange(300) % 3
    recon[:30] = (recon[:30] + 1) % 3
    ckpt, frame = _checkpoint_and_frame(X, Y, recon_pred=recon)
    m = frame_metrics(ckpt, frame, k=10)
    assert set(m) == {"trustworthiness", "continuity", "knn_preservation", "knn_count_self", "ppr"}
    assert m["trustworthiness"] == pytest.approx(1.0)
    assert m["knn_count_self"] == pytest.approx(10.0)
    assert m["ppr"] == pytest.approx(0.9)
    ckpt, frame = _checkpoint_and_frame(X, Y)
    assert "ppr" not in frame_metrics(ckpt, frame, k=10)


def test_frame_metrics_uses_the_fixed_subsample():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(500, 6))
    Y = X[:, :2] + 0.3 * rng.normal(size=(500, 2))
    ckpt, frame = _checkpoint_and_frame(X, Y)
    idx = eval_indices(500, eval_size=120, seed=7)
    m = frame_metrics(ckpt, frame, k=8, eval_size=120, seed=7)
    assert m["trustworthiness"] == pytest.approx(sk_trustworthiness(X[idx], Y[idx], n_neighbors=8))
    np.testing.assert_array_equal(idx, eval_indices(500, eval_size=120, seed=7))
    assert idx.size == 120 and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(eval_indices(100, eval_size=120), np.arange(100))


def test_frame_metrics_rejects_mismatched_frame():
    rng = np.random.default_rng(0)
    ckpt, _ = _checkpoint_and_frame(rng.normal(size=(60, 4)), rng.normal(size=(60, 2)))
    frame = Frame(method="test", index=0, epoch=1, embedding=rng.normal(size=(59, 2)))
    with pytest.raises(InputError, match="59 points"):
        frame_metrics(ckpt, frame, k=5)


def _one_d_trajectories(n_ckpt: int, n: int, d: int, seed: int):
    """HD: each sample walks along its own line; 2-D: a scaled copy of that walk."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(size=(n_ckpt, n)), axis=0)
    base, direction = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    base2, direction2 = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    features = [base + walk[t][:, None] * direction for t in range(n_ckpt)]
    embeddings = [base2 + 3.0 * walk[t][:, None] * direction2 for t in range(n_ckpt)]
    return features, embeddings


def test_temporal_ranking_perfect_for_scaled_copy_and_chance_for_shuffled():
    features, embeddings = _one_d_trajectories(12, 300, 16, seed=0)
    m = temporal_metrics(features, embeddings, k=5)
    assert m["temporal_ranking"] == pytest.approx(1.0)
    assert m["temporal_ranking_per_ref"] == pytest.approx([1.0] * 12)
    assert m["temporal_nn"] == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    stacked = np.stack(embeddings)
    shuffled = np.stack([stacked[rng.permutation(12), i] for i in range(300)], axis=1)
    m_shuffled = temporal_metrics(features, list(shuffled), k=5)
    assert abs(m_shuffled["temporal_ranking"]) < 0.1
    assert m_shuffled["temporal_nn"] < 0.6
    assert m["reasons"] == {}


def test_displacement_zero_for_identical_frames_and_scale_free():
    rng = np.random.default_rng(2)
    features = [rng.normal(size=(100, 4)) for _ in range(4)]
    frame = rng.normal(size=(100, 2))
    still = temporal_metrics(features, [frame] * 4, k=1)
    assert still["displacement"] == [0.0, 0.0, 0.0]
    assert still["displacement_mean"] == 0.0
    moving = [frame + 0.1 * t * rng.normal(size=(100, 2)) for t in range(4)]
    a = temporal_metrics(features, moving, k=1)
    b = temporal_metrics(features, [10.0 * y + 7.0 for y in moving], k=1)
    assert a["displacement"] == pytest.approx(b["displacement"])
    assert all(v > 0 for v in a["displacement"])


def test_temporal_metrics_with_too_few_checkpoints_explains_instead_of_crashing():
    rng = np.random.default_rng(3)
    features = [rng.normal(size=(50, 4)) for _ in range(2)]
    embeddings = [rng.normal(size=(50, 2)) for _ in range(2)]
    m = temporal_metrics(features, embeddings, k=5)
    assert np.isnan(m["temporal_ranking"]) and np.isnan(m["temporal_nn"])
    assert "at least 3 checkpoints" in m["reasons"]["temporal_ranking"]
    assert "k + 2" in m["reasons"]["temporal_nn"]
    assert len(m["displacement"]) == 1
    single = temporal_metrics(features[:1], embeddings[:1], k=5)
    assert single["displacement"] == [] and np.isnan(single["displacement_mean"])


def test_temporal_metrics_rejects_bad_input():
    rng = np.random.default_rng(4)
    features = [rng.normal(size=(50, 4)) for _ in range(3)]
    embeddings = [rng.normal(size=(50, 2)) for _ in range(3)]
    with pytest.raises(InputError, match="one embedding per checkpoint"):
        temporal_metrics(features, embeddings[:2])
    with pytest.raises(InputError, match=r"embeddings\[1\]"):
        temporal_metrics(features, [embeddings[0], embeddings[1][:40], embeddings[2]])
    bad = [f.copy() for f in features]
    bad[2][0, 0] = np.inf
    with pytest.raises(InputError, match="checkpoint 2"):
        temporal_metrics(bad, embeddings)


def test_above_the_small_n_limit_the_blocked_path_gives_the_same_exact_scores():
    from sklearn.neighbors import NearestNeighbors

    from sentrycam_widget import metrics

    n = metrics.SMALL_N + 300
    rng = np.random.default_rng(5)
    X = rng.normal(size=(n, 6))
    Y = X[:, :2] + 0.3 * rng.normal(size=(n, 2))
    assert metrics.trustworthiness(X, Y, 10) == pytest.approx(
        sk_trustworthiness(X, Y, n_neighbors=10), abs=1e-12
    )
    assert metrics.continuity(X, Y, 10) == pytest.approx(
        sk_trustworthiness(Y, X, n_neighbors=10), abs=1e-12
    )
    nx = NearestNeighbors(n_neighbors=11).fit(X).kneighbors(return_distance=False)[:, :10]
    ny = NearestNeighbors(n_neighbors=11).fit(Y).kneighbors(return_distance=False)[:, :10]
    expected = np.mean([np.isin(a, b).mean() for a, b in zip(nx, ny, strict=True)])
    assert metrics.knn_preservation(X, Y, 10) == pytest.approx(expected, abs=1e-12)


def test_temporal_metrics_by_sample_blocks_on_float32_equal_the_whole_float64_formula(
    monkeypatch,
):
    """The temporal metrics keep float32 features and work a block of samples at a time (bounded
    memory); widening float32 to float64 is exact, so the scores equal, to the bit, those of the
    earlier formula on whole float64 [n, T, T] arrays."""
    from sentrycam_widget import metrics

    features, embeddings = _one_d_trajectories(9, 50, 12, seed=6)
    rng = np.random.default_rng(7)
    features = [(f + rng.normal(size=f.shape)).astype(np.float32) for f in features]
    embeddings = [(e + rng.normal(size=e.shape)).astype(np.float32) for e in embeddings]
    F = np.stack(features).astype(np.float64)
    Y = np.stack(embeddings).astype(np.float64)
    traj = F.transpose(1, 0, 2)
    sq = np.einsum("itd,itd->it", traj, traj)
    hd = np.sqrt(np.maximum(sq[:, :, None] + sq[:, None, :] - 2.0 * traj @ traj.swapaxes(1, 2), 0))
    hd, ld = (
        metrics._others_distances(hd),
        metrics._others_distances(metrics._epoch_distances_2d(Y)),
    )
    ranking = metrics._spearman_rows(hd, ld).mean(axis=0)
    nearest = metrics._nearest_overlap(hd, ld, 3).mean(axis=0)
    monkeypatch.setattr(metrics, "_SAMPLE_BLOCK", 7)  # 50 samples: 8 blocks, the last one short
    blocks, distances = [], metrics._epoch_distances_hd
    monkeypatch.setattr(metrics, "_epoch_distances_hd", lambda f: blocks.append(f) or distances(f))
    m = temporal_metrics(features, embeddings, k=3)
    assert [b.shape[1] for b in blocks] == [7] * 7 + [1]
    assert {b.dtype for b in blocks} == {np.dtype(np.float32)}
    assert m["temporal_ranking_per_ref"] == [float(v) for v in ranking]
    assert m["temporal_nn_per_ref"] == [float(v) for v in nearest]
    assert m["temporal_ranking"] == float(ranking.mean())
    stacked = np.stack(features)
    assert temporal_metrics(stacked, embeddings, k=3) == m  # a stacked array is used as it is
