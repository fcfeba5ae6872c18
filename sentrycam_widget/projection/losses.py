"""Losses of the projector (SPEC §2.5): UMAP cross-entropy, reconstruction, temporal anchoring.

``q(d) = 1 / (1 + a·d^(2b))`` with (a, b) = umap-learn's ``find_ab_params(spread=1,
min_dist=0.1)`` = (1.5769, 0.8951) (verified against umap-learn 0.5.12; hard-coded so the loss
needs no umap import). Positive edges target q = 1; each positive gets 5 negatives paired from a
shuffled copy of the batch, target 0; binary cross-entropy with q clamped to [1e-4, 1].
"""

from __future__ import annotations

import numpy as np
import torch

UMAP_A = 1.5769434602697652
UMAP_B = 0.8950608778515733
NEGATIVE_RATE = 5
_Q_MIN = 1e-4


def low_dim_similarity(sq_dist: torch.Tensor, a: float = UMAP_A, b: float = UMAP_B) -> torch.Tensor:
    """UMAP's q from squared 2-D distances: 1 / (1 + a·(d²)^b)."""
    return 1.0 / (1.0 + a * sq_dist.clamp_min(1e-12).pow(b))


def umap_cross_entropy(
    y_head: torch.Tensor,
    y_tail: torch.Tensor,
    generator: torch.Generator | None = None,
    negative_rate: int = NEGATIVE_RATE,
) -> torch.Tensor:
    """Mean BCE over B positive pairs (target 1) and ``negative_rate``·B shuffled pairs (target 0).

    Negatives pair each head with tails of a random permutation of the repeated batch (in-batch
    negatives, as the reference). The mean is over all (1 + negative_rate)·B terms.
    """
    q_pos = low_dim_similarity(((y_head - y_tail) ** 2).sum(1))
    heads = y_head.repeat(negative_rate, 1)
    perm = torch.randperm(heads.shape[0], generator=generator, device="cpu").to(y_head.device)
    tails = y_tail.repeat(negative_rate, 1)[perm]
    q_neg = low_dim_similarity(((heads - tails) ** 2).sum(1))
    loss_pos = -torch.log(q_pos.clamp(_Q_MIN, 1.0))
    loss_neg = -torch.log((1.0 - q_neg).clamp(_Q_MIN, 1.0))
    return torch.cat([loss_pos, loss_neg]).mean()


def mean_feature_variance(x: np.ndarray) -> float:
    """Mean per-feature variance of ``x`` (floored at 1e-12): dividing the reconstruction MSE by
    it makes the loss, and so its weight, independent of the layer's scale."""
    return max(float(x.var(axis=0, dtype=np.float64).mean()), 1e-12)


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean squared error between representations and their round trip through the autoencoder."""
    return torch.nn.functional.mse_loss(x_hat, x)


def anchor_hinge(
    y_memory: torch.Tensor, frozen: torch.Tensor, margin: torch.Tensor
) -> torch.Tensor:
    """mean(max(0, ||enc(x_mem) − y_frozen|| − margin)): memory points stay near where drawn."""
    return torch.relu(torch.linalg.vector_norm(y_memory - frozen, dim=1) - margin).mean()
