"""Faithfulness metrics of 2-D frames (SPEC §4), usable on any projection method's frames.

Per frame (:func:`frame_metrics`): trustworthiness and continuity (Venna & Kaski), kNN
preservation (exact kNN, self excluded, a fraction), the papers' kNN count (self included, out of
k) and the prediction-preserving rate. Across frames (:func:`temporal_metrics`): temporal ranking,
temporal neighbour preservation and displacement.

Everything runs on a fixed subsample of at most ``eval_size`` probe points whose indices depend
only on the number of points, ``eval_size`` and ``seed`` (:func:`eval_indices`), so every frame and
every method of a run is scored on the same points. All neighbour searches are exact; the
published DVI/TimeVis/SentryCam numbers used approximate pynndescent kNN, so theirs can differ
slightly from ours on the same layout. Up to ``SMALL_N`` points the pairwise distance matrices
are built whole; above that, the same exact quantities are computed over blocks of rows, so no
N × N matrix is ever held.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from .errors import InputError
from .records import Checkpoint, Frame

SMALL_N = 4096  # up to this many points the N × N distance matrices are built whole
_DISTANCE_BLOCK = 256  # rows of distances at a time above SMALL_N
_ROW_BLOCK = 128  # rows per block when ranking neighbours (bounds memory to ~block * k * n bytes)
_SAMPLE_BLOCK = 256  # samples per block when computing per-sample distances across epochs


def eval_indices(n_points: int, eval_size: int = 2000, seed: int = 0) -> np.ndarray:
    """Sorted indices of the fixed evaluation subsample: all points if ``n_points <= eval_size``.

    Depends only on its arguments, so every frame and method of a run uses the same points.
    """
    if n_points < 1:
        raise InputError(f"need at least one point to evaluate, got {n_points}")
    if eval_size < 1:
        raise InputError(f"eval_size must be >= 1, got {eval_size}")
    if n_points <= eval_size:
        return np.arange(n_points)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_points, size=eval_size, replace=False))


def trustworthiness(X: np.ndarray, Y: np.ndarray, k: int = 15) -> float:
    """Venna & Kaski trustworthiness: are the 2-D neighbours real high-dimensional neighbours?

    Equal to ``sklearn.manifold.trustworthiness(X, Y, n_neighbors=k)``; needs ``k < n / 2``.
    """
    X, Y = _check_pair(X, Y, k, need_half=True)
    return _neighbour_scores(X, Y, k)["trustworthiness"]


def continuity(X: np.ndarray, Y: np.ndarray, k: int = 15) -> float:
    """Venna & Kaski continuity: are high-dimensional neighbours kept together in 2-D?

    Trustworthiness with the roles of ``X`` and ``Y`` swapped; needs ``k < n / 2``.
    """
    X, Y = _check_pair(X, Y, k, need_half=True)
    return _neighbour_scores(X, Y, k)["continuity"]


def knn_preservation(X: np.ndarray, Y: np.ndarray, k: int = 15) -> float:
    """Mean fraction of each point's k exact high-dimensional neighbours that are also 2-D ones.

    The point itself is excluded from both lists; the value lies in [0, 1].
    """
    X, Y = _check_pair(X, Y, k, need_half=False)
    return _neighbour_scores(X, Y, k, ranks=False)["knn_preservation"]


def knn_count_self(X: np.ndarray, Y: np.ndarray, k: int = 15) -> float:
    """The papers' NN-k: mean overlap count of the k-NN lists *including the point itself*.

    In [1, k] (1 = only the point itself survives). DVI/TimeVis/SentryCam computed it with
    approximate pynndescent kNN; here both lists are exact (self + its k - 1 nearest others).
    """
    X, Y = _check_pair(X, Y, k, need_half=False)
    return _neighbour_scores(X, Y, k, ranks=False)["knn_count_self"]


def prediction_preservation(recon_pred: np.ndarray, logits: np.ndarray) -> float:
    """PPR: share of points whose head prediction survives the 2-D round trip (SPEC §2.6)."""
    recon_pred = np.asarray(recon_pred)
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise InputError(f"logits must be [N, C], got shape {logits.shape}")
    if recon_pred.shape != (logits.shape[0],):
        raise InputError(
            f"recon_pred must be [N] = [{logits.shape[0]}] to match the logits, "
            f"got shape {recon_pred.shape}"
        )
    if not np.isfinite(logits).all():
        raise InputError("logits contain NaN/inf values")
    return float(np.mean(recon_pred == logits.argmax(axis=1)))


def frame_metrics(
    checkpoint: Checkpoint, frame: Frame, k: int = 15, eval_size: int = 2000, seed: int = 0
) -> dict[str, float]:
    """SPEC §4 per-frame metrics of ``frame`` against ``checkpoint``'s representations.

    Keys: ``trustworthiness``, ``continuity``, ``knn_preservation``, ``knn_count_self`` (on the
    fixed subsample of :func:`eval_indices`) and ``ppr`` (on all points; only when the frame has
    ``recon_pred`` and the checkpoint has logits).
    """
    n = checkpoint.n_points
    if frame.embedding.shape[0] != n:
        raise InputError(
            f"frame {frame.method!r} #{frame.index} has {frame.embedding.shape[0]} points but "
            f"checkpoint {checkpoint.index} has {n}"
        )
    idx = eval_indices(n, eval_size, seed)
    X, Y = _check_pair(checkpoint.features[idx], frame.embedding[idx], k, need_half=True)
    out = _neighbour_scores(X, Y, k)
    if frame.recon_pred is not None and checkpoint.logits is not None:
        out["ppr"] = prediction_preservation(frame.recon_pred, checkpoint.logits)
    return out


def temporal_metrics(
    features: Sequence[np.ndarray],
    embeddings: Sequence[np.ndarray],
    k: int = 5,
    eval_size: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """SPEC §4 temporal metrics over a sequence of T checkpoints of the same N probe points.

    Returns:
    - ``temporal_ranking``: for each reference checkpoint e and each sample, the Spearman
      correlation between ``||x_e - x_t||`` and ``||y_e - y_t||`` over the other checkpoints
      t != e (TimeVis also counts t = e, a tie at zero in both, which slightly inflates its
      values); a sample whose distances are constant in either space scores 0 (no information,
      as DVI does for undefined correlations); mean over samples, then over references.
      ``temporal_ranking_per_ref`` lists the per-reference means.
    - ``temporal_nn`` / ``temporal_nn_per_ref``: overlap fraction of the k nearest checkpoints
      (e excluded) by each distance; needs T >= k + 2, else trivially 1, so NaN instead.
    - ``displacement``: per consecutive pair, the mean 2-D move of a point divided by the
      diagonal of the bounding box of both frames together (scale- and translation-free);
      ``displacement_mean`` its mean. A frozen layout scores 0: read it with the ranking.
    - ``reasons``: metric name -> why it is NaN, for metrics that need more checkpoints.
    """
    F, Y = _stack_trajectories(features, embeddings, eval_size, seed)
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    n_ckpt = F.shape[0]
    reasons: dict[str, str] = {}
    out: dict[str, Any] = {"n_checkpoints": n_ckpt, "n_points": F.shape[1], "k": k}
    displacement = _displacements(Y)
    out["displacement"] = displacement
    out["displacement_mean"] = float(np.mean(displacement)) if displacement else float("nan")
    if n_ckpt < 2:
        reasons["displacement"] = "needs at least 2 checkpoints"
    if n_ckpt < 3:
        reasons["temporal_ranking"] = (
            f"needs at least 3 checkpoints (2 besides the reference), got {n_ckpt}"
        )
        out["temporal_ranking"], out["temporal_ranking_per_ref"] = float("nan"), []
    if n_ckpt < k + 2:
        reasons["temporal_nn"] = (
            f"needs at least k + 2 = {k + 2} checkpoints (else every other checkpoint is a "
            f"neighbour and the overlap is trivially 1), got {n_ckpt}"
        )
        out["temporal_nn"], out["temporal_nn_per_ref"] = float("nan"), []
    if n_ckpt >= 3:
        ranking, nearest = _per_sample_temporal(F, Y, k if "temporal_nn" not in reasons else None)
        per_ref = ranking.mean(axis=0)
        out["temporal_ranking"] = float(per_ref.mean())
        out["temporal_ranking_per_ref"] = [float(v) for v in per_ref]
        if nearest is not None:
            per_ref_nn = nearest.mean(axis=0)
            out["temporal_nn"] = float(per_ref_nn.mean())
            out["temporal_nn_per_ref"] = [float(v) for v in per_ref_nn]
    out["reasons"] = reasons
    return out


def _check_pair(X: np.ndarray, Y: np.ndarray, k: int, need_half: bool) -> tuple[np.ndarray, ...]:
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2:
        raise InputError(f"X and Y must be 2-D arrays, got shapes {X.shape} and {Y.shape}")
    if X.shape[0] != Y.shape[0]:
        raise InputError(
            f"X and Y must have the same number of points, got {X.shape[0]} and {Y.shape[0]}"
        )
    n = X.shape[0]
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    if k >= n:
        raise InputError(f"k = {k} must be smaller than the number of points ({n})")
    if need_half and k >= n / 2:
        raise InputError(
            f"trustworthiness/continuity need k < n / 2 to lie in [0, 1]; got k = {k}, n = {n}"
        )
    for name, arr in (("X (high-dimensional)", X), ("Y (2-D)", Y)):
        if not np.isfinite(arr).all():
            raise InputError(f"{name} contains {int((~np.isfinite(arr)).sum())} NaN/inf value(s)")
    return X, Y


def _neighbour_scores(X: np.ndarray, Y: np.ndarray, k: int, ranks: bool = True) -> dict[str, float]:
    """Trustworthiness and continuity (with ``ranks``), kNN preservation and the kNN count.

    Whole distance matrices up to ``SMALL_N`` points; above, blocks of ``_DISTANCE_BLOCK`` rows
    of both spaces at a time (the same exact values, memory O(block · N)).
    """
    n = X.shape[0]
    if n <= SMALL_N:
        dx, dy = _sq_distances(X), _sq_distances(Y)
        nx, ny = _knn(dx, k), _knn(dy, k)
        excess_t = _ranks(dx, ny) - k if ranks else None
        excess_c = _ranks(dy, nx) - k if ranks else None
    else:
        nx, ny = np.empty((n, k), np.int64), np.empty((n, k), np.int64)
        excess_t, excess_c = np.empty((n, k), np.int64), np.empty((n, k), np.int64)
        sq_x = np.einsum("ij,ij->i", X, X)
        for start in range(0, n, _DISTANCE_BLOCK):
            rows = np.arange(start, min(start + _DISTANCE_BLOCK, n))
            dx, dy = _sq_distance_rows(X, rows, sq_x), _sq_distance_rows(Y, rows, None)
            nx[rows], ny[rows] = _knn(dx, k), _knn(dy, k)
            if ranks:
                excess_t[rows] = _ranks(dx, ny[rows]) - k
                excess_c[rows] = _ranks(dy, nx[rows]) - k
    out = {
        "knn_preservation": float(_overlap_counts(nx, ny).mean() / k),
        "knn_count_self": _knn_count_with_self(nx, ny),
    }
    if ranks:
        out["trustworthiness"] = _rank_penalty(excess_t, n, k)
        out["continuity"] = _rank_penalty(excess_c, n, k)
    return out


def _sq_distance_rows(A: np.ndarray, rows: np.ndarray, sq: np.ndarray | None) -> np.ndarray:
    """Squared distances [len(rows), N] from ``A[rows]`` to every point, +inf on self; as
    :func:`_sq_distances` computes them (coordinate differences up to 3 columns, else the Gram
    identity with the row norms ``sq``)."""
    if A.shape[1] <= 3:
        d = np.zeros((rows.size, A.shape[0]))
        for column in A.T:
            d += np.square(column[rows, None] - column[None, :])
    else:
        sq = np.einsum("ij,ij->i", A, A) if sq is None else sq
        d = sq[rows, None] + sq[None, :] - 2.0 * (A[rows] @ A.T)
        np.maximum(d, 0.0, out=d)
    d[np.arange(rows.size), rows] = np.inf
    return d


def _sq_distances(A: np.ndarray) -> np.ndarray:
    """Exact pairwise squared euclidean distances (float64), +inf on the diagonal (self).

    Low-dimensional inputs (2-D layouts) are differenced coordinate by coordinate, which keeps
    close and tied points exact; wider inputs use the Gram identity, as scikit-learn does.
    """
    if A.shape[1] <= 3:
        d = np.zeros((A.shape[0], A.shape[0]))
        for column in A.T:
            d += np.square(column[:, None] - column[None, :])
    else:
        sq = np.einsum("ij,ij->i", A, A)
        d = sq[:, None] + sq[None, :] - 2.0 * (A @ A.T)
        np.maximum(d, 0.0, out=d)
    np.fill_diagonal(d, np.inf)
    return d


def _knn(d: np.ndarray, k: int) -> np.ndarray:
    """Indices [n, k] of each row's k smallest entries, nearest first (the diagonal is +inf)."""
    part = np.argpartition(d, k - 1, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(d, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _ranks(d: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """1-based rank of ``cols[i, m]`` among row i of ``d`` (ties share the smallest rank)."""
    out = np.empty(cols.shape, dtype=np.int64)
    for start in range(0, d.shape[0], _ROW_BLOCK):
        rows = d[start : start + _ROW_BLOCK]
        vals = np.take_along_axis(rows, cols[start : start + _ROW_BLOCK], axis=1)
        out[start : start + _ROW_BLOCK] = (rows[:, None, :] < vals[:, :, None]).sum(axis=2) + 1
    return out


def _rank_penalty(excess: np.ndarray, n: int, k: int) -> float:
    """1 - normalised sum of (rank - k) > 0 over each point's k neighbours.

    Trustworthiness: high-D ranks of the 2-D neighbours; continuity: the two spaces swapped.
    """
    penalty = float(excess[excess > 0].sum())
    return 1.0 - penalty * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))


def _overlap_counts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, how many indices of ``a[i]`` also appear in ``b[i]`` (rows hold no repeats)."""
    return (a[:, :, None] == b[:, None, :]).any(axis=2).sum(axis=1)


def _knn_count_with_self(nx: np.ndarray, ny: np.ndarray) -> float:
    """Self (always shared) plus the overlap of the k - 1 nearest others."""
    k = nx.shape[1]
    return float(1.0 + _overlap_counts(nx[:, : k - 1], ny[:, : k - 1]).mean())


def _stack_trajectories(
    features: Sequence[np.ndarray], embeddings: Sequence[np.ndarray], eval_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and subsample: features -> [T, n, D], embeddings -> [T, n, 2] float64.

    Features keep their precision (float32 stays float32; it is widened to float64 a block of
    samples at a time, which is exact). An already stacked and subsampled [T, n, D] float array
    is used as it is, not copied.
    """
    if len(features) != len(embeddings):
        raise InputError(
            f"got {len(features)} feature arrays but {len(embeddings)} embeddings; need one "
            "embedding per checkpoint"
        )
    if len(features) == 0:
        raise InputError("temporal metrics need at least one checkpoint")
    first = np.asarray(features[0])
    if first.ndim != 2:
        raise InputError(f"features must be [N, D] arrays, got shape {first.shape}")
    idx = eval_indices(first.shape[0], eval_size, seed)
    dtype = np.result_type(*{np.asarray(x).dtype for x in features}, np.float32)
    stacked = isinstance(features, np.ndarray) and features.dtype == dtype
    if stacked and idx.size == first.shape[0]:
        F = features
    else:
        F = np.empty((len(features), idx.size, first.shape[1]), dtype=dtype)
    Y = np.empty((len(features), idx.size, 2), dtype=np.float64)
    for t, (x, y) in enumerate(zip(features, embeddings, strict=True)):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != first.shape:
            raise InputError(f"features[{t}] has shape {x.shape}, expected {first.shape}")
        if y.shape != (first.shape[0], 2):
            raise InputError(f"embeddings[{t}] has shape {y.shape}, expected ({first.shape[0]}, 2)")
        if F is not features:
            F[t] = x[idx]
        Y[t] = y[idx]
        if not (np.isfinite(F[t]).all() and np.isfinite(Y[t]).all()):
            raise InputError(f"checkpoint {t}: features or embedding contain NaN/inf values")
    return F, Y


def _per_sample_temporal(
    F: np.ndarray, Y: np.ndarray, k: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per sample and reference checkpoint [n, T]: the Spearman correlation of the distances to
    the other checkpoints and (with ``k``) the overlap of their k nearest, computed
    ``_SAMPLE_BLOCK`` samples at a time so memory is O(block · T²), never O(n · T²)."""
    n_ckpt, n, _ = F.shape
    ranking = np.empty((n, n_ckpt))
    nearest = None if k is None else np.empty((n, n_ckpt))
    for start in range(0, n, _SAMPLE_BLOCK):
        samples = slice(start, start + _SAMPLE_BLOCK)
        hd = _others_distances(_epoch_distances_hd(F[:, samples]))
        ld = _others_distances(_epoch_distances_2d(Y[:, samples]))
        ranking[samples] = _spearman_rows(hd, ld)
        if nearest is not None:
            nearest[samples] = _nearest_overlap(hd, ld, k)
    return ranking, nearest


def _epoch_distances_hd(F: np.ndarray) -> np.ndarray:
    """[n, T, T] float64: per sample, distances between its representations at every two
    checkpoints (``F`` [T, n, D] is widened to float64 first)."""
    block = np.ascontiguousarray(F.transpose(1, 0, 2), dtype=np.float64)
    sq = np.einsum("itd,itd->it", block, block)
    gram = block @ block.transpose(0, 2, 1)
    return np.sqrt(np.maximum(sq[:, :, None] + sq[:, None, :] - 2.0 * gram, 0.0))


def _epoch_distances_2d(Y: np.ndarray) -> np.ndarray:
    """[n, T, T]: per sample, 2-D distances between its positions at every two checkpoints."""
    traj = Y.transpose(1, 0, 2)
    return np.linalg.norm(traj[:, :, None, :] - traj[:, None, :, :], axis=-1)


def _others_distances(d: np.ndarray) -> np.ndarray:
    """[n, T, T-1]: row e of each sample's matrix without its own entry (t = e)."""
    n_ckpt = d.shape[1]
    others = np.array([[t for t in range(n_ckpt) if t != e] for e in range(n_ckpt)])
    return np.take_along_axis(d, np.broadcast_to(others, (d.shape[0], *others.shape)), axis=2)


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation along the last axis; 0 where either side is constant."""
    ra = rankdata(a, axis=-1)
    rb = rankdata(b, axis=-1)
    ra -= ra.mean(axis=-1, keepdims=True)
    rb -= rb.mean(axis=-1, keepdims=True)
    denom = np.sqrt((ra * ra).sum(axis=-1) * (rb * rb).sum(axis=-1))
    num = (ra * rb).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, num / np.where(denom > 0, denom, 1.0), 0.0)


def _nearest_overlap(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Overlap fraction of the k smallest entries along the last axis of ``a`` and ``b``."""
    na = np.argsort(a, axis=-1, kind="stable")[..., :k]
    nb = np.argsort(b, axis=-1, kind="stable")[..., :k]
    return (na[..., :, None] == nb[..., None, :]).any(axis=-1).sum(axis=-1) / k


def _displacements(Y: np.ndarray) -> list[float]:
    """Per consecutive pair: mean point move / diagonal of both frames' joint bounding box."""
    out = []
    for prev, cur in itertools.pairwise(Y):
        both = np.concatenate([prev, cur])
        diagonal = float(np.linalg.norm(both.max(axis=0) - both.min(axis=0)))
        move = float(np.linalg.norm(cur - prev, axis=1).mean())
        out.append(move / diagonal if diagonal > 0 else 0.0)
    return out
