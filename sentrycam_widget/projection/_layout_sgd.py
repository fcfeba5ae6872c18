"""UMAP's layout SGD over a fixed edge list, as numba kernels kept in numba's on-disk cache.

umap-learn's own epoch kernel is compiled without ``cache=True``, so every fresh process paid
its compilation (seconds on the 2-core machine) inside the first refined frame. These are
compiled once per install (``python -m sentrycam_widget warmup``, run by ``scripts/setup.sh``)
and loaded from the cache afterwards.

The update is UMAP's (McInnes et al. 2018, §3 and appendix): for an edge (i, j) sampled this
epoch, with ``d² = |y_i − y_j|²`` and ``q = 1 / (1 + a·d^(2b))``,

* attraction: both ends move along ``−2ab·d^(2(b−1)) / (1 + a·d^(2b)) · (y_i − y_j)``;
* repulsion: ``negative_rate`` random points k per sample, y_i moves along
  ``2b / ((ε + d²)(1 + a·d^(2b))) · (y_i − y_k)``;

each gradient component clipped to [−4, 4] and scaled by a learning rate decaying linearly to
0. An edge of weight w is sampled once every ``max(w) / w`` epochs. The negative samples come
from the kernel's own xorshift64* generator. With ``chunks=1`` the sweep is serial and a seed
fixes the result; with more, the edge list is cut into that many runs, each with its own
generator, swept in parallel on numba's threads as umap-learn's parallel mode does (threads may
overwrite each other's moves of a shared point, so the result then varies with the thread
count and timing: :func:`~.refine.refine_layout` does so only for large point sets, and one
thread still gives a seeded result). It releases the GIL
(``nogil``: it touches only its arrays), so a training loop in the same process goes on while
the monitor's worker refines (30 epochs over the digits graph: about 0.1 s that the training
thread otherwise waited for the GIL).
"""

from __future__ import annotations

import numba
import numpy as np

_CLIP = 4.0
_EPSILON = 0.001


@numba.njit(cache=True, fastmath=True)
def _clipped(value: float) -> float:
    if value > _CLIP:
        return _CLIP
    if value < -_CLIP:
        return -_CLIP
    return value


@numba.njit(cache=True, fastmath=True)
def _attract(y: np.ndarray, i: int, j: int, a: float, b: float, alpha: float) -> None:
    dx = y[i, 0] - y[j, 0]
    dy = y[i, 1] - y[j, 1]
    d2 = dx * dx + dy * dy
    if d2 <= 0.0:
        return
    coeff = -2.0 * a * b * d2 ** (b - 1.0) / (a * d2**b + 1.0)
    gx = _clipped(coeff * dx) * alpha
    gy = _clipped(coeff * dy) * alpha
    y[i, 0] += gx
    y[i, 1] += gy
    y[j, 0] -= gx
    y[j, 1] -= gy


@numba.njit(cache=True, fastmath=True)
def _repel(y: np.ndarray, i: int, k: int, a: float, b: float, alpha: float) -> None:
    dx = y[i, 0] - y[k, 0]
    dy = y[i, 1] - y[k, 1]
    d2 = dx * dx + dy * dy
    if d2 <= 0.0:
        return
    coeff = 2.0 * b / ((_EPSILON + d2) * (a * d2**b + 1.0))
    y[i, 0] += _clipped(coeff * dx) * alpha
    y[i, 1] += _clipped(coeff * dy) * alpha


@numba.njit(cache=True, fastmath=True, nogil=True)
def _sweep(y, head, tail, epochs_per_sample, next_sample, per_negative, next_negative,
           first, last, epoch, a, b, alpha, states, chunk) -> None:  # fmt: skip
    """One epoch over the edges ``first:last`` with chunk ``chunk``'s generator ``states``."""
    n = y.shape[0]
    state = states[chunk]
    for e in range(first, last):
        if next_sample[e] > epoch:
            continue
        i = head[e]
        _attract(y, i, tail[e], a, b, alpha)
        next_sample[e] += epochs_per_sample[e]
        n_negative = int((epoch - next_negative[e]) / per_negative[e])
        for _ in range(n_negative):
            state ^= state >> np.uint64(12)  # xorshift64* (Vigna 2016)
            state ^= state << np.uint64(25)
            state ^= state >> np.uint64(27)
            k = np.int64((state * np.uint64(0x2545F4914F6CDD1D)) >> np.uint64(33)) % n
            if k != i:
                _repel(y, i, k, a, b, alpha)
        next_negative[e] += n_negative * per_negative[e]
    states[chunk] = state


@numba.njit(cache=True, fastmath=True, nogil=True, parallel=True)
def layout_sgd(
    y: np.ndarray,
    head: np.ndarray,
    tail: np.ndarray,
    epochs_per_sample: np.ndarray,
    a: float,
    b: float,
    negative_rate: int,
    n_epochs: int,
    learning_rate: float,
    anchor: np.ndarray,
    anchor_weight: float,
    seed: int,
    chunks: int,
) -> None:
    """Run ``n_epochs`` epochs of UMAP's SGD on ``y`` [N, 2] (float32, in place).

    ``head``/``tail`` [E] int32 edge ends, ``epochs_per_sample`` [E] (``max(w) / w``);
    ``anchor`` [N, 2] or an empty [0, 2] array: after each epoch every point moves
    ``min(1, anchor_weight · lr)`` of the way towards its anchor. The edges are split into
    ``chunks`` runs, each with its own generator, swept in parallel (1: serial).
    """
    states = np.empty(chunks, np.uint64)
    for chunk in range(chunks):
        states[chunk] = (np.uint64(seed) + np.uint64(chunk)) * np.uint64(
            0x9E3779B97F4A7C15
        ) | np.uint64(1)
    n = y.shape[0]
    bounds = (np.arange(chunks + 1) * head.shape[0]) // chunks
    next_sample = epochs_per_sample.copy()
    per_negative = epochs_per_sample / negative_rate
    next_negative = per_negative.copy()
    anchored = anchor.shape[0] == n and anchor_weight > 0.0
    for epoch in range(1, n_epochs + 1):
        alpha = learning_rate * (1.0 - (epoch - 1.0) / n_epochs)
        for chunk in numba.prange(chunks):
            _sweep(y, head, tail, epochs_per_sample, next_sample, per_negative, next_negative,
                   bounds[chunk], bounds[chunk + 1], epoch, a, b, alpha, states, chunk)  # fmt: skip
        if anchored:
            pull = min(1.0, anchor_weight * alpha)
            for i in range(n):
                y[i, 0] += pull * (anchor[i, 0] - y[i, 0])
                y[i, 1] += pull * (anchor[i, 1] - y[i, 1])
