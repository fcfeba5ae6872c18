"""Refinement of every point's 2-D position over the all-point graph, and the decoder to match.

The encoder places all N points, but it is trained on a step budget and has a capacity ceiling;
a short run of UMAP's layout optimiser (SGD on UMAP's cross-entropy over the spatial
graph of all N points, negative sampling, learning rate decaying linearly to 0), started from
the previous frame, gives every point a training signal. Between epochs each point is pulled
towards its previous displayed position (``anchor``) by a fraction of the epoch's learning rate,
which keeps the temporal meaning of the warm start. The kernel is the project's own
(:mod:`._layout_sgd`, kept in numba's on-disk cache): serial and seeded up to
``PARALLEL_MIN_POINTS`` points, above that on every numba thread (seeded with one thread).
:func:`fit_decoder` then fine-tunes the decoder on the refined positions, so the decision
background and the round-trip predictions (PPR) describe what is shown.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from ..pacing import pause
from ..records import Head
from .autoencoder import Autoencoder, recalibrate_batchnorm
from .losses import NEGATIVE_RATE, UMAP_A, UMAP_B, reconstruction_loss

# above this many points the refinement sweeps PARALLEL_CHUNKS runs of edges on every numba
# thread of the calling thread (reproducible only with one); at or below it, serial and seeded
PARALLEL_MIN_POINTS = 5000
PARALLEL_CHUNKS = 16


def refine_layout(
    embedding: np.ndarray,
    edges: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_epochs: int,
    seed: int,
    anchor: np.ndarray | None = None,
    anchor_weight: float = 0.0,
    learning_rate: float = 1.0,
) -> np.ndarray:
    """``embedding`` [N, 2] after ``n_epochs`` epochs of UMAP's SGD on ``edges``.

    Parameters
    ----------
    embedding
        Starting positions [N, 2] (not modified).
    edges
        ``(head, tail, weight)`` of the all-point fuzzy graph, both directions of every edge.
    n_epochs
        Epochs of the optimiser; an edge of weight w is sampled about ``n_epochs · w / max(w)`` times.
    seed
        Seeds the negative sampling (the kernel's own xorshift64* generator); fixes the result
        up to ``PARALLEL_MIN_POINTS`` points, and above with one numba thread.
    anchor
        Previous displayed positions [N, 2] of the same points, or None.
    anchor_weight
        Each epoch moves every point ``anchor_weight · lr`` of the way towards its anchor.
    learning_rate
        UMAP's initial learning rate (alpha).

    Returns
    -------
    np.ndarray
        Refined positions [N, 2], float32.
    """
    from ._layout_sgd import layout_sgd  # numba: loaded on the first refinement, not on import

    y = np.array(embedding, dtype=np.float32, order="C", copy=True)
    n = y.shape[0]
    head, tail, weight = edges
    if y.ndim != 2 or y.shape[1] != 2:
        raise InputError(f"embedding must be [N, 2], got {y.shape}")
    if n_epochs < 1:
        raise InputError(f"refinement needs n_epochs >= 1, got {n_epochs}")
    if anchor is not None and anchor.shape != y.shape:
        raise InputError(f"anchor must be [N, 2] = {y.shape}, got {anchor.shape}")
    if head.size and max(int(head.max()), int(tail.max())) >= n:
        raise InputError(f"edges reference points beyond N = {n}")
    weight = np.asarray(weight, dtype=np.float64)
    live = weight > 0
    if not live.any():
        return y
    target = np.zeros((0, 2), np.float32) if anchor is None else np.asarray(anchor, np.float32)
    chunks = PARALLEL_CHUNKS if n > PARALLEL_MIN_POINTS else 1
    layout_sgd(
        y,
        np.ascontiguousarray(head[live], dtype=np.int32),
        np.ascontiguousarray(tail[live], dtype=np.int32),
        weight.max() / weight[live],  # epochs between two samples of each edge
        UMAP_A,
        UMAP_B,
        NEGATIVE_RATE,
        int(n_epochs),
        float(learning_rate),
        np.ascontiguousarray(target),
        float(anchor_weight),
        int(seed) % 2**32,
        chunks,
    )
    return y


def fit_decoder(
    model: Autoencoder,
    positions: torch.Tensor,
    features: torch.Tensor,
    steps: int,
    generator: torch.Generator,
    batch: int = 512,
    lr: float = 0.005,
    variance: float = 1.0,
    head: Head | None = None,
    predictions: torch.Tensor | None = None,
    prediction_weight: float = 0.0,
) -> float:
    """Fine-tune ``model``'s decoder so that ``decode(positions) ≈ features``; returns the last loss.

    The encoder is left alone. Each of ``steps`` Adam steps reconstructs ``batch`` points drawn
    uniformly from all N (scale-free MSE: divided by ``variance``), plus, with a ``head``,
    ``prediction_weight`` times the cross-entropy of ``head(decode(y))`` against the model's own
    ``predictions`` (so a position decodes to a representation the model classifies as it
    classifies the point; this is what PPR measures); the decoder's batch-norm
    statistics are then recomputed on all positions, so the background and the round-trip
    predictions describe the positions shown.

    Parameters
    ----------
    model
        The projector's autoencoder (its decoder is trained in place).
    positions, features
        [N, 2] shown positions and [N, D] representations, on the model's device.
    steps, batch, lr
        Optimiser budget, points per step and Adam's learning rate.
    generator
        Draws the batches.
    variance
        Mean feature variance that scales the reconstruction loss.
    head, predictions, prediction_weight
        The checkpoint's head, the model's predicted class of each point [N] and the weight of
        the prediction term (0 or no head: reconstruction only).

    Returns
    -------
    float
        The last step's loss (NaN with ``steps = 0``).
    """
    decoder = model.decoder
    optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)
    n, loss_value = positions.shape[0], float("nan")
    decoder.train()
    for _ in range(steps):
        picked = torch.randint(n, (min(batch, n),), generator=generator).to(positions.device)
        decoded = decoder(positions[picked])
        loss = reconstruction_loss(features[picked], decoded) / variance
        if head is not None and predictions is not None and prediction_weight > 0:
            logits = head.forward_torch(decoded)
            loss = loss + prediction_weight * torch.nn.functional.cross_entropy(
                logits, predictions[picked]
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_value = float(loss.detach())
        pause()
    decoder.eval()
    recalibrate_batchnorm(decoder, positions)
    return loss_value
