"""Pieces shared by the warm-started autoencoder projectors (SentryCam and the DVI baseline).

Both train one :class:`.autoencoder.Autoencoder` per run on a step budget with plateau early
stopping, time their stages into ``frame.timings``, build each frame the same way (all N points
encoded in batches, then the decision background and round-trip predictions when the
checkpoint has a head) and save / load their weights in the same state format. Keeping one copy
here means the two methods differ only in what they train on, which is the comparison.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..checks import check_increasing
from ..errors import InputError, RunFormatError
from ..pacing import pause
from ..records import Checkpoint, Frame
from .autoencoder import Autoencoder, recalibrate_batchnorm
from .background import decision_background, decoded_predictions, square_extent
from .base import Projector


def resolve_device(device: str) -> torch.device:
    """``"cpu"``, ``"cuda"`` (must be available) or ``"auto"`` (cuda when available, else cpu)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} was asked for but torch sees no CUDA device")
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError(f"device must be 'cpu', 'cuda[:i]' or 'auto', got {device!r}")
    return torch.device(device)


class Stage:
    """Context manager adding the elapsed seconds of a block to ``timings[name]``.

    Entering a stage is a :func:`~sentrycam_widget.pacing.pause` point (on the monitor's worker
    the engine may rest there, before the stage's clock starts).
    """

    def __init__(self, timings: dict[str, float], name: str) -> None:
        self.timings, self.name = timings, name

    def __enter__(self) -> None:
        pause()
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.name] = (
            self.timings.get(self.name, 0.0) + time.perf_counter() - self.start
        )


class Plateau:
    """Early stop: the mean loss of each window of steps must improve by ``min_improvement``
    (relative) within ``patience`` windows."""

    def __init__(self, window: int, patience: int, min_improvement: float) -> None:
        self.window, self.patience, self.min_improvement = window, patience, min_improvement
        self.losses: list[float] = []
        self.best = float("inf")
        self.stale = 0

    def stop(self, loss: float) -> bool:
        """Record one step's loss; True once ``patience`` windows in a row failed to improve."""
        self.losses.append(loss)
        if len(self.losses) < self.window:
            return False
        mean = sum(self.losses) / len(self.losses)
        self.losses.clear()
        if mean < self.best * (1.0 - self.min_improvement):
            self.best, self.stale = mean, 0
            return False
        self.stale += 1
        return self.stale >= self.patience


def optimise(
    model: torch.nn.Module,
    step_loss: Callable[[int], torch.Tensor],
    *,
    max_steps: int,
    lr: float,
    weight_decay: float,
    decay_at: float,
    plateau: Plateau,
) -> tuple[int, float]:
    """Adam on ``model`` for at most ``max_steps``; ``step_loss(i)`` gives step i's loss (i from 0).

    The learning rate drops ×0.1 after ``decay_at`` of the budget. A plateau before that brings
    the drop forward (the low-rate phase keeps its length, so the budget is never exceeded); a
    plateau after it stops training. Returns (steps taken, last loss).
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    decay_step, end = int(decay_at * max_steps), max_steps
    step, loss_value = 0, float("nan")
    while step < end:
        if step == decay_step:
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.1
        loss = step_loss(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        loss_value = float(loss.detach())
        pause()
        if plateau.stop(loss_value):
            if step > decay_step:
                break
            end, decay_step = step + (max_steps - decay_step), step
    return step, loss_value


def batched(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int = 8192
) -> torch.Tensor:
    """``fn`` applied to ``x`` in row batches (bounded memory for large N), concatenated."""
    return torch.cat([fn(x[start : start + batch]) for start in range(0, x.shape[0], batch)])


STATE_VERSION = 1


class AutoencoderProjector(Projector):
    """Base of the projectors that fine-tune one warm-started autoencoder across a run.

    Holds what SentryCam and DVI do alike: the options every such projector has, the seeded
    generators of each update, checking each checkpoint against the run so far, training the
    network on the shared schedule, building the frame from the network and saving / loading
    the weights. Subclasses set the optimiser options below.
    """

    lr: float
    weight_decay: float
    lr_decay_at: float
    window: int
    patience: int
    min_improvement: float

    def __init__(
        self, seed: int, device: str, resolution: int, k: int, widths: list[int] | None
    ) -> None:
        if resolution < 2:
            raise InputError(f"background resolution must be at least 2, got {resolution}")
        if k < 2:
            raise InputError(f"k nearest neighbours must be at least 2, got {k}")
        self.seed = int(seed)
        self.device = resolve_device(device)
        self.resolution = int(resolution)
        self.k = int(k)
        self.widths = list(widths) if widths is not None else None
        self.model: Autoencoder | None = None
        self.last_index: int | None = None
        self.n_points: int | None = None
        self.n_features: int | None = None

    def _randomness(self, index: int) -> tuple[np.random.Generator, torch.Generator]:
        """The numpy and torch generators of checkpoint ``index``: a frame depends only on the
        seed, the checkpoint and the state carried from earlier updates."""
        rng = np.random.default_rng([self.seed, index])
        return rng, torch.Generator().manual_seed(self.seed * 1_000_003 + index)

    def state_dict(self) -> dict[str, Any]:
        """Network weights (numpy copies, not live views) and the dimensions they were trained for."""
        return {
            "version": STATE_VERSION,
            "last_index": self.last_index,
            "n_points": self.n_points,
            "n_features": self.n_features,
            "widths": None if self.model is None else list(self.model.widths),
            "weights": None
            if self.model is None
            else {
                name: t.detach().cpu().numpy().copy() for name, t in self.model.state_dict().items()
            },
        }

    def _check_input(self, checkpoint: Checkpoint) -> None:
        """Adopt the first checkpoint's dimensions; later ones must match them and follow on."""
        if self.n_features is None:
            self.n_points, self.n_features = checkpoint.n_points, checkpoint.n_features
            return
        if checkpoint.n_features != self.n_features:
            raise InputError(
                f"checkpoint {checkpoint.index} has feature dimension {checkpoint.n_features}, "
                f"but this run's earlier checkpoints have {self.n_features}; project one layer "
                f"per run"
            )
        if checkpoint.n_points != self.n_points:
            raise InputError(
                f"checkpoint {checkpoint.index} has {checkpoint.n_points} probe points, but this "
                f"run's earlier checkpoints have {self.n_points}; the probe set must stay fixed"
            )
        check_increasing(checkpoint.index, self.last_index, "update()'s checkpoints")

    def _train(
        self, step_loss: Callable[[int], torch.Tensor], max_steps: int, nodes: torch.Tensor
    ) -> tuple[int, float]:
        """:func:`optimise` the network with this projector's options, then put it in eval mode
        with batch-norm statistics of its training ``nodes``; returns (steps, last loss)."""
        self.model.train()
        steps, loss = optimise(
            self.model,
            step_loss,
            max_steps=max_steps,
            lr=self.lr,
            weight_decay=self.weight_decay,
            decay_at=self.lr_decay_at,
            plateau=Plateau(self.window, self.patience, self.min_improvement),
        )
        self.model.eval()
        recalibrate_batchnorm(self.model, nodes)
        return steps, loss

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.device)

    @torch.no_grad()
    def _encode_all(self, checkpoint: Checkpoint) -> np.ndarray:
        """All N points through the encoder (eval mode, in batches): [N, 2] float32."""
        return batched(self.model.encode, self._tensor(checkpoint.features)).cpu().numpy()

    @torch.no_grad()
    def _frame(
        self,
        checkpoint: Checkpoint,
        timings: dict[str, float],
        embedding: np.ndarray | None = None,
    ) -> Frame:
        """The frame of ``embedding`` (default: all N points encoded) and, with a head, the
        decision background and the predictions of the decoded positions; stage times go into
        ``timings``."""
        if embedding is None:
            with Stage(timings, "projection"):
                embedding = self._encode_all(checkpoint)
        background, recon_pred = None, None
        if checkpoint.head is not None:
            with Stage(timings, "background"):
                background = decision_background(
                    self.model.decode,
                    checkpoint.head,
                    square_extent(embedding),
                    self.resolution,
                    self.device,
                )
            with Stage(timings, "recon_pred"):
                recon_pred = decoded_predictions(
                    self.model.decode, checkpoint.head, self._tensor(embedding)
                )
        return Frame(
            method=self.method,
            index=checkpoint.index,
            epoch=checkpoint.epoch,
            embedding=embedding,
            background=background,
            recon_pred=recon_pred,
        )

    def _load_weights(self, state: dict[str, Any]) -> None:
        """The network saved by :meth:`state_dict`, on ``device`` in eval mode.

        Raises RunFormatError when the state's version or feature dimension does not match the
        run, or its weights do not fit the network.
        """
        if state.get("version") != STATE_VERSION:
            raise RunFormatError(
                f"{self.method} state version {state.get('version')!r} is not {STATE_VERSION}"
            )
        if state.get("n_features") != self.n_features:
            raise RunFormatError(
                f"{self.method} state was trained on {state.get('n_features')} features, the "
                f"run's checkpoints have {self.n_features}"
            )
        model = Autoencoder(int(state["n_features"]), list(state["widths"]))
        weights = {name: torch.as_tensor(np.asarray(v)) for name, v in state["weights"].items()}
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            raise RunFormatError(
                f"{self.method} state weights do not fit the network: {exc}"
            ) from exc
        self.model = model.to(self.device).eval()
