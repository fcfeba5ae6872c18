"""The SentryCam projector (SPEC §2): one warm-started autoencoder fine-tuned per checkpoint.

``update(checkpoint)`` runs the per-checkpoint pipeline in order — density-guided sampling,
spatial fuzzy graph, working memory and temporal edges (from the second checkpoint on), a
step-budgeted fine-tune warm-started from the previous checkpoint's weights, a refinement of all
N positions over the all-point graph with the decoder fine-tuned on them (the default), and the
frame of all N points with its decision background and round-trip predictions. Each stage lives in its own
module; this one only wires them together and owns the state that carries across checkpoints
(the network and the memory bank).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import InputError, RunFormatError
from ..records import Checkpoint, Frame
from ._training import AutoencoderProjector, Stage
from .autoencoder import Autoencoder
from .base import RunHistory
from .graph import (
    SENTRYCAM_EXACT_MAX_POINTS,
    fuzzy_edges,
    knn_graph,
    pca_view,
    sample_edges,
    search_state,
    spatial_edges,
    temporal_edges,
)
from .losses import anchor_hinge, mean_feature_variance, reconstruction_loss, umap_cross_entropy
from .memory import MemoryBank, MemorySet, remember
from .refine import fit_decoder, refine_layout
from .sampling import SampleResult, density_guided_sample

Edges = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(eq=False)
class _TrainingSet:
    """Tensors one fine-tune draws its batches from (current sample, edges, optional memory)."""

    x: torch.Tensor
    spatial: Edges
    variance: float
    memory: MemorySet | None = None
    x_memory: torch.Tensor | None = None
    frozen: torch.Tensor | None = None
    margins: torch.Tensor | None = None
    temporal: Edges | None = None


class SentryCamProjector(AutoencoderProjector):
    """SentryCam: density-guided sample + working memory + GN-BN autoencoder, warm-started.

    The default (``graph="all"``) trains the encoder on the kNN graph of every probe point, refines
    every position with ``refine_epochs`` of umap-learn's layout optimiser and fine-tunes the
    decoder on the shown positions; ``graph="sample"`` with ``refine_epochs=0`` is the SPEC §2
    method (registered as ``sentrycam-spec``). Why each default is what it is, with the
    measurements behind it: ``docs/engine.md``.

    Parameters
    ----------
    seed
        Seed of every random choice (sample, batches, initial weights).
    device
        Torch device of the network (``"cpu"``, ``"cuda"``).
    resolution
        Side, in cells, of the decision-background grid.
    k
        Neighbours per point in the spatial graph.
    tau
        Density threshold of the density-guided sample (SPEC §2).
    min_samples
        Floor on the density-guided sample size.
    memory_fraction, memory_min_points
        Share of the sample kept in the working memory per checkpoint, and its floor.
    temporal_k
        Neighbours per point in the temporal graph (previous checkpoints' memory).
    cold_steps, warm_steps
        Encoder optimiser steps at the first checkpoint and at each later one. None: 300 and 0
        when frames are refined from the previous one (the encoder's frame then only starts
        the first refinement; measurements in ``docs/engine.md``), else 900 and 100.
    batch_edges, temporal_batch_edges
        Spatial and temporal edges per step.
    lr, weight_decay, lr_decay_at
        Adam's learning rate and weight decay; the step share after which it drops ×0.1.
    patience, window, min_improvement
        Early stop after ``patience`` windows of ``window`` steps without a relative improvement
        of ``min_improvement`` in the mean loss.
    recon_weight, temporal_weight
        Weights of the (scale-free) reconstruction loss and of the temporal loss.
    negative_rate
        Negative samples per positive edge.
    widths
        Hidden widths of the autoencoder (None: the default GN-BN stack).
    graph
        ``"all"`` (every probe point) or ``"sample"`` (the SPEC's sample-only graph).
    exact_max_points
        Largest N for exact kNN; above it NN-descent (pynndescent), warm-started.
    pca_dims
        Width of the randomized-PCA view NN-descent searches on when features are wider
        (None: the raw features).
    refine_epochs
        Epochs of layout refinement over all points (0: the encoder's frame is shown).
    anchor_weight
        Pull of each refined position towards the previous frame (temporal stability).
    decoder_steps, prediction_weight
        Decoder fine-tune steps on the shown positions and the weight of agreeing with the
        model's prediction there.
    refine_init
        Start of the refinement: ``"previous"`` frame or the ``"encoder"``'s frame.
    """

    method: ClassVar[str] = "sentrycam"
    has_inverse: ClassVar[bool] = True

    def __init__(
        self,
        seed: int = 0,
        device: str = "cpu",
        resolution: int = 200,
        k: int = 15,
        tau: float = 0.25,
        min_samples: int = 5000,
        memory_fraction: float = 0.05,
        memory_min_points: int = 50,
        temporal_k: int = 5,
        cold_steps: int | None = None,
        warm_steps: int | None = None,
        batch_edges: int = 250,
        temporal_batch_edges: int = 85,
        lr: float = 0.005,
        weight_decay: float = 1e-4,
        lr_decay_at: float = 0.7,
        patience: int = 2,
        window: int = 60,
        min_improvement: float = 0.01,
        recon_weight: float = 3.0,
        temporal_weight: float = 0.3,
        negative_rate: int = 5,
        widths: list[int] | None = None,
        graph: str = "all",
        exact_max_points: int = SENTRYCAM_EXACT_MAX_POINTS,
        pca_dims: int | None = 64,
        refine_epochs: int = 30,
        anchor_weight: float = 0.1,
        decoder_steps: int = 150,
        prediction_weight: float = 1.0,
        refine_init: str = "previous",
    ) -> None:
        super().__init__(seed, device, resolution, k, widths)
        if cold_steps is None:
            cold_steps = 300 if refine_epochs > 0 else 900
        if warm_steps is None:
            warm_steps = 0 if refine_epochs > 0 and refine_init == "previous" else 100
        if min(cold_steps, warm_steps) < 0 or min(batch_edges, temporal_batch_edges) < 1:
            raise InputError("step budgets must be >= 0 and edge batches >= 1")
        if graph not in ("all", "sample"):
            raise InputError(f"graph must be 'all' or 'sample', got {graph!r}")
        if graph == "sample" and refine_epochs > 0:
            raise InputError("refine_epochs > 0 needs the all-point graph (graph='all')")
        if min(refine_epochs, decoder_steps) < 0 or anchor_weight < 0:
            raise InputError("refine_epochs, decoder_steps and anchor_weight must be >= 0")
        if refine_init not in ("encoder", "previous"):
            raise InputError(f"refine_init must be 'encoder' or 'previous', got {refine_init!r}")
        if pca_dims is not None and pca_dims < 2:
            raise InputError(f"pca_dims must be >= 2 or None, got {pca_dims}")
        self.graph = graph
        self.exact_max_points = int(exact_max_points)
        self.pca_dims = pca_dims
        self.refine_epochs = int(refine_epochs)
        self.anchor_weight = float(anchor_weight)
        self.decoder_steps = int(decoder_steps)
        self.prediction_weight = float(prediction_weight)
        self.refine_init = refine_init
        self.tau = float(tau)
        self.min_samples = int(min_samples)
        self.memory_fraction = float(memory_fraction)
        self.memory_min_points = int(memory_min_points)
        self.temporal_k = int(temporal_k)
        self.cold_steps = int(cold_steps)
        self.warm_steps = int(warm_steps)
        self.batch_edges = int(batch_edges)
        self.temporal_batch_edges = int(temporal_batch_edges)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.lr_decay_at = float(lr_decay_at)
        self.patience = int(patience)
        self.window = int(window)
        self.min_improvement = float(min_improvement)
        self.recon_weight = float(recon_weight)
        self.temporal_weight = float(temporal_weight)
        self.negative_rate = int(negative_rate)
        self.memory = MemoryBank()
        self.last_sample: SampleResult | None = None
        self.knn_indices: np.ndarray | None = None  # the last all-point graph (warm start)
        self.pca_basis: np.ndarray | None = None  # the last search view's basis (warm start)
        self.previous: np.ndarray | None = None  # the last frame shown (refinement anchor)

    # ------------------------------------------------------------------ protocol
    def update(self, checkpoint: Checkpoint) -> Frame:
        """Project one checkpoint (all N points), warm-starting from the previous update.

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
        features = checkpoint.features

        with Stage(timings, "spatial_graph"):
            spatial = self._all_point_edges(features) if self.graph == "all" else None
        cold = self.model is None
        steps, loss, data, sample = 0, float("nan"), None, None
        if cold or self.warm_steps > 0:
            with Stage(timings, "sampling"):
                sample = density_guided_sample(
                    features, checkpoint.labels, rng, tau=self.tau, min_samples=self.min_samples
                )
                self.last_sample = sample
            if spatial is None:
                with Stage(timings, "spatial_graph"):
                    spatial = spatial_edges(features[sample.indices], self.k)
            with Stage(timings, "memory"):
                data = self._training_set(checkpoint, sample, spatial)
            if cold:
                self.model = Autoencoder(self.n_features, self.widths, generator).to(self.device)
            with Stage(timings, "training"):
                steps, loss = self._fit(
                    data, self.cold_steps if cold else self.warm_steps, rng, generator
                )
        embedding = None
        if self.refine_epochs > 0:
            embedding = self._refined(checkpoint, spatial, timings, generator)
        frame = self._frame(checkpoint, timings, embedding)
        self.previous = frame.embedding
        self.memory.add(
            remember(
                checkpoint.index,
                features,
                frame.embedding,
                self.seed,
                self.memory_fraction,
                self.memory_min_points,
            )
        )
        self.last_index = checkpoint.index
        timings["total"] = time.perf_counter() - clock
        frame.timings = timings
        frame.metrics = {"train_steps": float(steps), "train_loss": float(loss)}
        if data is not None:
            frame.metrics.update(
                sample_ratio=float(sample.ratio),
                sample_size=float(sample.size),
                memory_size=float(data.memory.size if data.memory is not None else 0),
                graph_points=float(data.x.shape[0]),
            )
        return frame

    def resume(self, history: RunHistory, state: dict[str, Any] | None) -> None:
        """Rebuild the memory bank from the stored checkpoints and frames, and the weights from ``state``.

        Without saved weights the next update starts a fresh network, still anchored to the
        stored frames through the memory's frozen positions.

        Parameters
        ----------
        history
            The run so far (a :class:`~sentrycam_widget.store.RunStore` or a view of it).
        state
            What :meth:`state_dict` returned after the last stored frame, or None.
        """
        self.memory = MemoryBank()
        self.model, self.last_index, self.previous = None, None, None
        self.n_points, self.n_features, self.knn_indices, self.pca_basis = None, None, None, None
        for index in history.frame_indices(self.method):
            checkpoint, frame = history.checkpoint(index), history.frame(self.method, index)
            if frame.embedding.shape[0] != checkpoint.n_points:
                raise RunFormatError(
                    f"stored {self.method} frame {index} has {frame.embedding.shape[0]} points "
                    f"but its checkpoint has {checkpoint.n_points}"
                )
            self._check_input(checkpoint)
            self.memory.add(
                remember(
                    index,
                    checkpoint.features,
                    frame.embedding,
                    self.seed,
                    self.memory_fraction,
                    self.memory_min_points,
                )
            )
            self.last_index = index
            self.previous = frame.embedding
        if state and self.n_points is not None:
            self.knn_indices, self.pca_basis = search_state(
                state, self.method, self.n_points, self.n_features, self.pca_dims
            )
        if state and state.get("weights") is not None:
            if self.n_features is None:
                self.n_points, self.n_features = state.get("n_points"), state.get("n_features")
            self._load_weights(state)

    def state_dict(self) -> dict[str, Any]:
        """The network weights, the last all-point kNN graph and its search view's PCA basis.

        Returns
        -------
        dict
            ``knn_indices`` and ``pca_basis`` (they warm-start the next neighbour search) beside
            the autoencoder's weights and optimiser state.
        """
        search = {"knn_indices": self.knn_indices, "pca_basis": self.pca_basis}
        return {**super().state_dict(), **search}

    # ------------------------------------------------------------------ stages
    def _all_point_edges(self, features: np.ndarray) -> Edges:
        """Fuzzy kNN edges over all N points: exact kNN up to ``exact_max_points``, else
        NN-descent warm-started from the previous checkpoint's graph (on a ``pca_dims``-d
        randomized-PCA view when the features are wider)."""
        n = features.shape[0]
        view = features
        if n > self.exact_max_points and self.pca_dims is not None:
            view, self.pca_basis = pca_view(features, self.pca_dims, self.seed, self.pca_basis)
        indices, dists = knn_graph(
            view,
            min(self.k, n),
            init_graph=self.knn_indices,
            exact_max_points=self.exact_max_points,
        )
        self.knn_indices = indices
        return fuzzy_edges(indices, dists)

    def _training_set(
        self, checkpoint: Checkpoint, sample: SampleResult, spatial: Edges
    ) -> _TrainingSet:
        """The encoder's training nodes: all N points on the all-point graph, else the sample.

        Temporal edges always start from the density-guided sample (SPEC §2.3).
        """
        every = self.graph == "all"
        x_nodes = checkpoint.features if every else checkpoint.features[sample.indices]
        data = _TrainingSet(
            x=self._tensor(x_nodes), spatial=spatial, variance=mean_feature_variance(x_nodes)
        )
        memory = self.memory.memory_for(checkpoint.index, checkpoint.features)
        if memory is not None:
            data.memory = memory
            data.x_memory = self._tensor(memory.features)
            data.frozen = self._tensor(memory.frozen)
            data.margins = self._tensor(memory.margins)
            heads, tails, weights = temporal_edges(
                checkpoint.features[sample.indices], memory.features, self.temporal_k
            )
            data.temporal = (sample.indices[heads] if every else heads, tails, weights)
        return data

    def _refined(
        self,
        checkpoint: Checkpoint,
        spatial: Edges,
        timings: dict[str, float],
        generator: torch.Generator,
    ) -> np.ndarray:
        """All N points refined over the all-point graph from the previous frame (the encoder's
        frame at the first checkpoint, or with ``refine_init="encoder"``), anchored to the
        previous frame, and the decoder fine-tuned on the refined positions; returns them."""
        if self.refine_init == "previous" and self.previous is not None:
            start = self.previous
        else:
            with Stage(timings, "projection"):
                start = self._encode_all(checkpoint)
        with Stage(timings, "refinement"):
            refined = refine_layout(
                start,
                spatial,
                self.refine_epochs,
                seed=self.seed * 1_000_003 + checkpoint.index,
                anchor=self.previous,
                anchor_weight=self.anchor_weight,
            )
        with Stage(timings, "decoder"):
            fit_decoder(
                self.model,
                self._tensor(refined),
                self._tensor(checkpoint.features),
                self.decoder_steps,
                generator,
                lr=self.lr,
                variance=mean_feature_variance(checkpoint.features),
                head=checkpoint.head,
                predictions=None
                if checkpoint.logits is None
                else torch.from_numpy(checkpoint.predictions).to(self.device),
                prediction_weight=self.prediction_weight,
            )
        return refined

    def _fit(
        self,
        data: _TrainingSet,
        max_steps: int,
        rng: np.random.Generator,
        generator: torch.Generator,
    ) -> tuple[int, float]:
        """Fine-tune the network on ``data`` for at most ``max_steps``; returns (steps, last loss)."""
        spatial_draws = sample_edges(data.spatial[2], max_steps * self.batch_edges, rng)
        temporal_draws = None
        if data.temporal is not None:
            temporal_draws = sample_edges(
                data.temporal[2], max_steps * self.temporal_batch_edges, rng
            )

        def step_loss(step: int) -> torch.Tensor:
            spatial = spatial_draws[step * self.batch_edges : (step + 1) * self.batch_edges]
            temporal = None
            if temporal_draws is not None:
                t = self.temporal_batch_edges
                temporal = temporal_draws[step * t : (step + 1) * t]
            return self._batch_loss(data, spatial, temporal, generator)

        nodes = data.x if data.x_memory is None else torch.cat([data.x, data.x_memory])
        return self._train(step_loss, max_steps, nodes)

    def _batch_loss(
        self,
        data: _TrainingSet,
        picked: np.ndarray,
        t_picked: np.ndarray | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """UMAP CE + reconstruction on spatial edges, + temporal CE + anchor hinge on memory edges.

        The batch's unique nodes (current and memory) go through the encoder once.
        """
        heads, tails, _ = data.spatial
        ends = [heads[picked], tails[picked]]
        if data.temporal is not None:
            t_cur, t_mem, _ = data.temporal
            ends.append(t_cur[t_picked])
        nodes, inverse = np.unique(np.concatenate(ends), return_inverse=True)
        inverse = torch.from_numpy(inverse).to(self.device)
        n_cur = nodes.size
        x_nodes = data.x[torch.from_numpy(nodes).to(self.device)]
        if data.temporal is not None:
            mem_nodes, mem_inverse = np.unique(t_mem[t_picked], return_inverse=True)
            mem_index = torch.from_numpy(mem_nodes).to(self.device)
            y = self.model.encode(torch.cat([x_nodes, data.x_memory[mem_index]]))
        else:
            y = self.model.encode(x_nodes)
        y_cur = y[:n_cur]
        b = self.batch_edges
        loss = umap_cross_entropy(
            y_cur[inverse[:b]], y_cur[inverse[b : 2 * b]], generator, self.negative_rate
        )
        recon = reconstruction_loss(x_nodes, self.model.decode(y_cur)) / data.variance
        loss = loss + self.recon_weight * recon
        if data.temporal is not None:
            y_mem = y[n_cur:]
            mem_inverse = torch.from_numpy(mem_inverse).to(self.device)
            temporal = umap_cross_entropy(
                y_cur[inverse[2 * b :]], y_mem[mem_inverse], generator, self.negative_rate
            )
            temporal = temporal + anchor_hinge(
                y_mem, data.frozen[mem_index], data.margins[mem_index]
            )
            loss = loss + self.temporal_weight * temporal
        return loss


class SpecSentryCamProjector(SentryCamProjector):
    """SentryCam as SPEC §2 specifies it: the encoder trained on the density-guided sample's own
    kNN graph, and the frame is the encoder's output (no all-point graph, no refinement).

    Kept by name (``sentrycam-spec``) so the comparison can show the specified method beside the
    default; every other option is :class:`SentryCamProjector`'s.
    """

    method: ClassVar[str] = "sentrycam-spec"

    def __init__(self, seed: int = 0, **options: Any) -> None:
        options = {"graph": "sample", "refine_epochs": 0, "decoder_steps": 0, **options}
        super().__init__(seed, **options)
