"""Alert signals: class geometry and feature-space statistics of one checkpoint (SPEC §5).

The paper's 2-D signals (intra-class variance V, inter-class distance D), the scale-free
Fisher ratio and neural-collapse NC1, effective rank, linear CKA between two checkpoints and
the dead-unit fraction. Each takes plain arrays and returns a float; bad input raises
:class:`~sentrycam_widget.errors.InputError`.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def intra_class_variance(points: np.ndarray, labels: np.ndarray) -> float:
    """V: mean over classes of the mean squared distance to the class centroid.

    Classes with fewer than two points are skipped, as in the reference.
    """
    points, labels = _points_and_labels(points, labels)
    spreads = [
        float(np.mean(np.sum((members - members.mean(axis=0)) ** 2, axis=1)))
        for members in _class_members(points, labels)
        if members.shape[0] > 1
    ]
    return float(np.mean(spreads)) if spreads else float("nan")


def inter_class_distance(points: np.ndarray, labels: np.ndarray) -> float:
    """D: mean euclidean distance between the centroids of every two classes."""
    points, labels = _points_and_labels(points, labels)
    centroids = np.stack([members.mean(axis=0) for members in _class_members(points, labels)])
    upper = np.triu_indices(centroids.shape[0], k=1)
    gaps = np.linalg.norm(centroids[:, None, :] - centroids[None, :, :], axis=-1)[upper]
    return float(gaps.mean()) if gaps.size else float("nan")


def fisher_ratio(points: np.ndarray, labels: np.ndarray) -> float:
    """tr(S_B) / tr(S_W): between-class over within-class scatter (scale-free; falling is bad).

    S_B weights each class centroid's squared distance to the global mean by its share of the
    points; S_W is the mean squared distance of each point to its class centroid.
    NaN when every point sits on its class centroid.
    """
    points, labels = _points_and_labels(points, labels)
    centre = points.mean(axis=0)
    between = within = 0.0
    for members in _class_members(points, labels):
        centroid = members.mean(axis=0)
        between += members.shape[0] * float(np.sum((centroid - centre) ** 2))
        within += float(np.sum((members - centroid) ** 2))
    return between / within if within > 0 else float("nan")


def nc1(features: np.ndarray, labels: np.ndarray, rcond: float = 1e-10) -> float:
    """Neural-collapse NC1 = tr(Σ_W Σ_B⁺) / C (Papyan, Han & Donoho 2020); falling is healthy.

    float64 throughout; Σ_B⁺ is the eigendecomposition-based pseudo-inverse of the between-class
    covariance, computed in the (≤ C-dimensional) span of the centred class means, so no D×D
    matrix is formed. Eigenvalues below ``rcond`` × the largest are treated as zero.
    """
    features, labels = _points_and_labels(features, labels)
    groups = _class_members(features, labels)
    means = np.stack([members.mean(axis=0) for members in groups])
    centred_means = means - means.mean(axis=0)
    n_classes = means.shape[0]
    eigvals, eigvecs = np.linalg.eigh(centred_means @ centred_means.T / n_classes)
    keep = eigvals > rcond * max(float(eigvals.max()), 0.0)
    if not keep.any():
        return float("nan")
    # Unit eigenvectors of Σ_B in feature space: u = M^T v / sqrt(C λ).
    directions = centred_means.T @ eigvecs[:, keep] / np.sqrt(n_classes * eigvals[keep])
    residuals = np.concatenate(
        [members - mean for members, mean in zip(groups, means, strict=True)]
    )
    within_along = np.mean((residuals @ directions) ** 2, axis=0)
    return float(np.sum(within_along / eigvals[keep]) / n_classes)


def effective_rank(features: np.ndarray) -> float:
    """Roy & Vetterli effective rank: exp of the entropy of the normalised singular values.

    Computed on the centred features (the spread of variation, not the mean direction); 0 when
    the features do not vary at all. Falling sharply = rank collapse.
    """
    x = _finite_matrix(features, "features")
    x = x - x.mean(axis=0)
    gram = x.T @ x if x.shape[1] <= x.shape[0] else x @ x.T
    singular = np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0.0, None))
    total = singular.sum()
    if total <= 0:
        return 0.0
    p = singular[singular > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA between two representations of the same points (1 = same up to rotation/scale).

    NaN when either side does not vary.
    """
    x = _finite_matrix(x, "x")
    y = _finite_matrix(y, "y")
    if x.shape[0] != y.shape[0]:
        raise InputError(
            f"CKA needs the same points on both sides, got {x.shape[0]} and {y.shape[0]}"
        )
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    if x.shape[0] < x.shape[1] + y.shape[1]:
        gx, gy = x @ x.T, y @ y.T
        cross, norm_x, norm_y = np.sum(gx * gy), np.linalg.norm(gx), np.linalg.norm(gy)
    else:
        cross = np.linalg.norm(y.T @ x) ** 2
        norm_x, norm_y = np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)
    if norm_x <= 0 or norm_y <= 0:
        return float("nan")
    return float(cross / (norm_x * norm_y))


def dead_unit_fraction(features: np.ndarray) -> float:
    """Share of units (columns) that are <= 0 on every probe point: dead ReLUs."""
    x = _finite_matrix(features, "features")
    return float(np.mean(np.all(x <= 0, axis=0)))


def _finite_matrix(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2:
        raise InputError(f"{name} must be [N, D] with N >= 2, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{name} contain NaN/inf values")
    return a


def _points_and_labels(points: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    points = _finite_matrix(points, "points")
    labels = np.asarray(labels)
    if labels.shape != (points.shape[0],):
        raise InputError(f"labels must be [N] = [{points.shape[0]}], got shape {labels.shape}")
    if np.unique(labels).size < 2:
        raise InputError("class geometry needs at least two classes in the labels")
    return points, labels


def _class_members(points: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    return [points[labels == c] for c in np.unique(labels)]


def feature_norm(features: np.ndarray) -> float:
    """Mean euclidean norm of the feature vectors (growth = the representation blowing up)."""
    x = _finite_matrix(features, "features")
    return float(np.mean(np.linalg.norm(x, axis=1)))


def class_accuracies(logits: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """Accuracy of the argmax of ``logits`` per class of ``labels`` (the probe under the head)."""
    logits = _finite_matrix(logits, "logits")
    labels = np.asarray(labels)
    if labels.shape != (logits.shape[0],):
        raise InputError(f"labels must be [N] = [{logits.shape[0]}], got shape {labels.shape}")
    correct = logits.argmax(axis=1) == labels
    return {int(c): float(correct[labels == c].mean()) for c in np.unique(labels)}


def prediction_margin(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean softmax margin of the true class: p(label) - the largest other p (falling is bad).

    In [-1, 1]; it falls as soon as the head starts hedging between the true class and another
    one (label noise, a shifted input), before the argmax, and so the accuracy, changes.
    """
    logits = _finite_matrix(logits, "logits")
    labels = np.asarray(labels)
    if labels.shape != (logits.shape[0],):
        raise InputError(f"labels must be [N] = [{logits.shape[0]}], got shape {labels.shape}")
    shifted = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    p /= p.sum(axis=1, keepdims=True)
    rows = np.arange(p.shape[0])
    true = p[rows, labels]
    p[rows, labels] = -np.inf
    return float(np.mean(true - p.max(axis=1)))
