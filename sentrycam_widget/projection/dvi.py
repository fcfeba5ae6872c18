"""The DVI baseline (DeepVisualInsight, AAAI 2022) in torch, on SentryCam's own building blocks.

SPEC §3: one parametric-UMAP autoencoder per checkpoint, warm-started from checkpoint t−1's
weights and trained on **every** probe point — no density-guided sampling and no working memory.
The loss per batch of fuzzy-graph edges is

    UMAP cross-entropy + reconstruction + 0.3 · mean_npr · Σ ‖W_t − W_{t−1}‖²

where the sum runs over every trainable parameter and ``mean_npr`` is the mean fraction of each
point's 15 high-dimensional nearest neighbours at t−1 that are still among its 15 at t (DVI's
"neighbour preserving rate"; 0 at the first checkpoint, so the weight-drift term vanishes
there). The graph (:mod:`.graph`), network (:mod:`.autoencoder`), losses (:mod:`.losses`) and
background / round-trip predictions (:mod:`.background`) are the same code SentryCam uses, so the
comparison isolates the method: all points and a weight-space anchor (DVI) against a sample, a
memory of frozen 2-D positions and temporal edges (SentryCam).

Optimisation follows the reference (Adam, lr 0.01, weight decay 1e-5) on SentryCam's schedule
(:func:`._training.optimise`: ×0.1 decay at 70 % of the budget, brought forward by a loss plateau,
stop at a plateau after it). DVI trains for a number of passes over its edge list, so
its step budget grows with N: ``cold_epochs`` passes at the first checkpoint, ``warm_epochs``
afterwards (at most ``max_steps``). That is what makes DVI slower than SentryCam at large N.

Boundary points (optional, ``boundary_points > 0``): DVI synthesises points near decision
boundaries by mixing two input images of different predicted classes and bisecting the mixing
weight until the top-two normalised logits differ by less than 0.1. We only have
representations and the head, so we mix **representations** instead — ``x(λ) = λ·x1 + (1−λ)·x2``
with x1 predicted c1 and x2 predicted c2, bisecting λ on the head's prediction until the margin
``(z1 − z2) / (z1 − zmin)`` is below 0.1 — the honest analogue of DVI's input mixup. Class pairs
are drawn uniformly among predicted classes and, within a class, points are drawn with
probability ∝ 1/(z_c1 − z_c2 + 1e-4) (those already near the pair's border), as DVI does. The
boundary points join the nodes of the fuzzy kNN graph (one graph over probe and boundary points,
a simplification of DVI's separate boundary-wise complex) and are regenerated per checkpoint.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import InputError
from ..records import Checkpoint, Frame, Head
from ._training import AutoencoderProjector, Stage
from .autoencoder import Autoencoder
from .background import logit_margin
from .base import RunHistory
from .graph import fuzzy_edges, knn_graph, sample_edges
from .losses import mean_feature_variance, reconstruction_loss, umap_cross_entropy

BOUNDARY_MARGIN = 0.1
_BISECTION_STEPS = 12


class DVIProjector(AutoencoderProjector):
    """DVI: a warm-started autoencoder on all N points with a neighbour-scaled weight anchor.

    ``last_loss_terms`` holds the last update's loss terms (mean over its steps): ``umap``,
    ``reconstruction``, ``drift`` (the weighted weight-drift term), ``mean_npr`` and ``steps``.
    The same numbers go into ``frame.metrics`` with a ``loss_`` prefix.

    Parameters
    ----------
    seed
        Seed of every random choice (batches, boundary points, initial weights).
    device
        Torch device of the network (``"cpu"``, ``"cuda"``).
    resolution
        Side, in cells, of the decision-background grid.
    k
        Neighbours per point in the fuzzy kNN graph.
    cold_epochs, warm_epochs
        Passes over the edge list at the first checkpoint and at each later one.
    max_steps
        Cap on optimiser steps per checkpoint.
    batch_edges
        Edges per step.
    lr, weight_decay, lr_decay_at
        Adam's learning rate and weight decay; the step share after which it drops ×0.1.
    patience, window, min_improvement
        Early stop after ``patience`` windows of ``window`` steps without a relative improvement
        of ``min_improvement`` in the mean loss.
    recon_weight
        Weight of the (scale-free) reconstruction loss.
    drift_weight
        Weight of the neighbour-scaled anchor on the previous checkpoint's weights.
    boundary_points
        Synthetic boundary points per checkpoint (0: none).
    widths
        Hidden widths of the autoencoder (None: the default stack).
    """

    method: ClassVar[str] = "dvi"
    has_inverse: ClassVar[bool] = True

    def __init__(
        self,
        seed: int = 0,
        device: str = "cpu",
        resolution: int = 200,
        k: int = 15,
        cold_epochs: float = 20.0,
        warm_epochs: float = 5.0,
        max_steps: int = 2000,
        batch_edges: int = 2000,
        lr: float = 0.01,
        weight_decay: float = 1e-5,
        lr_decay_at: float = 0.7,
        patience: int = 3,
        window: int = 10,
        min_improvement: float = 0.005,
        recon_weight: float = 1.0,
        drift_weight: float = 0.3,
        boundary_points: int = 0,
        widths: list[int] | None = None,
    ) -> None:
        super().__init__(seed, device, resolution, k, widths)
        if min(cold_epochs, warm_epochs) < 0 or max_steps < 1 or batch_edges < 1:
            raise InputError("epochs must be >= 0, max_steps and batch_edges >= 1")
        if boundary_points < 0 or drift_weight < 0:
            raise InputError("boundary_points and drift_weight must be >= 0")
        self.cold_epochs = float(cold_epochs)
        self.warm_epochs = float(warm_epochs)
        self.max_steps = int(max_steps)
        self.batch_edges = int(batch_edges)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.lr_decay_at = float(lr_decay_at)
        self.patience = int(patience)
        self.window = int(window)
        self.min_improvement = float(min_improvement)
        self.recon_weight = float(recon_weight)
        self.drift_weight = float(drift_weight)
        self.boundary_points = int(boundary_points)
        self.last_loss_terms: dict[str, float] = {}
        self._previous_knn: np.ndarray | None = None

    # ------------------------------------------------------------------ protocol
    def update(self, checkpoint: Checkpoint) -> Frame:
        """Train on all N points of ``checkpoint`` (warm-started) and return its frame.

        Parameters
        ----------
        checkpoint
            The checkpoint to project; its index must follow the last one projected.

        Returns
        -------
        Frame
            Positions of all N points, the decision background and round-trip predictions.
        """
        self._check_input(checkpoint)
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        rng, generator = self._randomness(checkpoint.index)
        with Stage(timings, "boundary_points"):
            nodes = self._nodes(checkpoint, rng)
        with Stage(timings, "spatial_graph"):
            current_knn, edges = self._graph(checkpoint.features, nodes)
            mean_npr = self._mean_npr(current_knn)
        if self.model is None:
            self.model = Autoencoder(self.n_features, self.widths, generator).to(self.device)
        epochs = self.cold_epochs if self.last_index is None else self.warm_epochs
        with Stage(timings, "training"):
            self.last_loss_terms = self._fit(nodes, edges, epochs, mean_npr, rng, generator)
        frame = self._frame(checkpoint, timings)
        self._previous_knn = current_knn
        self.last_index = checkpoint.index
        timings["total"] = time.perf_counter() - clock
        frame.timings = timings
        frame.metrics = {f"loss_{name}": value for name, value in self.last_loss_terms.items()}
        frame.metrics["boundary_points"] = float(nodes.shape[0] - checkpoint.n_points)
        return frame

    def resume(self, history: RunHistory, state: dict[str, Any] | None) -> None:
        """Continue after the last stored DVI frame: weights from ``state``, the previous
        checkpoint's neighbourhoods (for the neighbour preserving rate) from ``history``.

        Without saved weights the next update trains a fresh network (a cold start).

        Parameters
        ----------
        history
            The run so far (a :class:`~sentrycam_widget.store.RunStore` or a view of it).
        state
            What :meth:`state_dict` returned after the last stored frame, or None.
        """
        self.model, self.last_index, self._previous_knn = None, None, None
        self.n_points = self.n_features = None
        indices = history.frame_indices(self.method)
        if not indices or not state or state.get("weights") is None:
            return
        last = history.checkpoint(indices[-1])
        self._check_input(last)
        self._load_weights(state)
        self._previous_knn = knn_graph(last.features, min(self.k, last.n_points))[0]
        self.last_index = indices[-1]

    # ------------------------------------------------------------------ stages
    def _nodes(self, checkpoint: Checkpoint, rng: np.random.Generator) -> np.ndarray:
        """The probe points, followed by this checkpoint's boundary points if asked for."""
        if self.boundary_points == 0 or checkpoint.head is None:
            return checkpoint.features
        boundary = boundary_points(
            checkpoint.features, checkpoint.logits, checkpoint.head, self.boundary_points, rng
        )
        return np.concatenate([checkpoint.features, boundary])

    def _graph(
        self, features: np.ndarray, nodes: np.ndarray
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The probe points' kNN lists and the fuzzy edges over all nodes (probe + boundary)."""
        k = min(self.k, features.shape[0])
        knn_indices, knn_dists = knn_graph(features, k)
        if nodes.shape[0] > features.shape[0]:
            return knn_indices, fuzzy_edges(*knn_graph(nodes, k))
        return knn_indices, fuzzy_edges(knn_indices, knn_dists)

    def _mean_npr(self, current_knn: np.ndarray) -> float:
        """Mean fraction of each point's k neighbours (self excluded) kept since t−1; 0 at first."""
        if self._previous_knn is None:
            return 0.0
        return neighbour_preserving_rate(self._previous_knn, current_knn)

    def _fit(
        self,
        nodes: np.ndarray,
        edges: tuple[np.ndarray, np.ndarray, np.ndarray],
        epochs: float,
        mean_npr: float,
        rng: np.random.Generator,
        generator: torch.Generator,
    ) -> dict[str, float]:
        """Train for ``epochs`` passes over the edges (early-stopped); mean loss terms per step."""
        model = self.model
        x = self._tensor(nodes)
        variance = mean_feature_variance(nodes)
        anchor = [p.detach().clone() for p in model.parameters()]
        drift_scale = self.drift_weight * mean_npr
        max_steps = min(
            self.max_steps, max(1, math.ceil(epochs * edges[0].size / self.batch_edges))
        )
        totals = {"umap": 0.0, "reconstruction": 0.0, "drift": 0.0}

        def step_loss(_step: int) -> torch.Tensor:
            terms = self._batch_terms(x, edges, variance, anchor, drift_scale, rng, generator)
            for name, value in terms.items():
                totals[name] += float(value.detach())
            return terms["umap"] + self.recon_weight * terms["reconstruction"] + terms["drift"]

        step, _ = self._train(step_loss, max_steps, x)
        result = {name: total / step for name, total in totals.items()}
        result.update(mean_npr=mean_npr, steps=float(step))
        return result

    def _batch_terms(
        self,
        x: torch.Tensor,
        edges: tuple[np.ndarray, np.ndarray, np.ndarray],
        variance: float,
        anchor: list[torch.Tensor],
        drift_scale: float,
        rng: np.random.Generator,
        generator: torch.Generator,
    ) -> dict[str, torch.Tensor]:
        """UMAP CE and reconstruction on a weight-sampled edge batch, and the weight drift."""
        heads, tails, weights = edges
        picked = sample_edges(weights, self.batch_edges, rng)
        nodes, inverse = np.unique(
            np.concatenate([heads[picked], tails[picked]]), return_inverse=True
        )
        inverse = torch.from_numpy(inverse).to(self.device)
        x_nodes = x[torch.from_numpy(nodes).to(self.device)]
        y = self.model.encode(x_nodes)
        b = self.batch_edges
        drift = sum(
            ((p - p0) ** 2).sum() for p, p0 in zip(self.model.parameters(), anchor, strict=True)
        )
        return {
            "umap": umap_cross_entropy(y[inverse[:b]], y[inverse[b:]], generator),
            "reconstruction": reconstruction_loss(x_nodes, self.model.decode(y)) / variance,
            "drift": drift_scale * drift,
        }


def neighbour_preserving_rate(previous_knn: np.ndarray, current_knn: np.ndarray) -> float:
    """Mean over points of the fraction of its neighbours at t−1 still its neighbours at t.

    Both lists are [N, k] with the point itself in column 0 (umap's convention, as DVI's 15-NN
    lists); self is left out, so each point contributes |kNN_{t−1}(i) ∩ kNN_t(i)| / (k − 1).
    """
    if previous_knn.shape != current_knn.shape:
        raise InputError(
            f"neighbour lists differ in shape: {previous_knn.shape} vs {current_knn.shape}"
        )
    prev, cur = previous_knn[:, 1:], current_knn[:, 1:]
    kept = (prev[:, :, None] == cur[:, None, :]).any(axis=2).sum(axis=1)
    return float(kept.mean() / prev.shape[1])


def boundary_points(
    features: np.ndarray,
    logits: np.ndarray,
    head: Head,
    n: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Up to ``n`` representations on the head's decision boundaries, by bisected mixing.

    Pairs (x1 predicted c1, x2 predicted c2) are mixed as λ·x1 + (1−λ)·x2; λ is bisected (the
    head predicts c1 at λ = 1 and c2 at λ = 0) and the points whose normalised top-two logit
    margin ends below 0.1 are kept. Returns float32 [m, D] with m ≤ n (0 rows when the model
    predicts a single class).
    """
    predictions = logits.argmax(axis=1)
    classes = np.unique(predictions)
    if classes.size < 2:
        return np.empty((0, features.shape[1]), dtype=np.float32)
    pairs = np.array([rng.choice(classes, 2, replace=False) for _ in range(n)])
    x1 = features[_near_border(logits, predictions, pairs[:, 0], pairs[:, 1], rng)]
    x2 = features[_near_border(logits, predictions, pairs[:, 1], pairs[:, 0], rng)]
    lo, hi = np.zeros((n, 1)), np.ones((n, 1))
    for _ in range(_BISECTION_STEPS):
        mid = (lo + hi) / 2.0
        still_c1 = head(mid * x1 + (1.0 - mid) * x2).argmax(axis=1) == pairs[:, 0]
        hi = np.where(still_c1[:, None], mid, hi)
        lo = np.where(still_c1[:, None], lo, mid)
    mixed = (((lo + hi) / 2.0) * x1 + (1.0 - (lo + hi) / 2.0) * x2).astype(np.float32)
    margin = logit_margin(torch.from_numpy(np.asarray(head(mixed), dtype=np.float32))).numpy()
    return mixed[margin < BOUNDARY_MARGIN]


def _near_border(
    logits: np.ndarray,
    predictions: np.ndarray,
    own: np.ndarray,
    other: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """For each pair, one point predicted ``own``, drawn ∝ 1 / (z_own − z_other + 1e-4)."""
    chosen = np.empty(own.size, dtype=np.int64)
    for c1 in np.unique(own):
        members = np.flatnonzero(predictions == c1)
        for c2 in np.unique(other[own == c1]):
            slots = np.flatnonzero((own == c1) & (other == c2))
            gap = logits[members, c1] - logits[members, c2]
            weight = 1.0 / (np.maximum(gap, 0.0) + 1e-4)
            chosen[slots] = rng.choice(members, slots.size, p=weight / weight.sum())
    return chosen
