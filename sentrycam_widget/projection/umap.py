"""UMAP baseline projectors (umap-learn), warm-started and aligned, or independent.

SPEC §3: ``UMAP(n_neighbors=15, min_dist=0.1)`` fitted on all N probe points at every
checkpoint. Run independently, each frame is a fresh layout with its own arbitrary rotation,
reflection and scale, so the picture jumps from checkpoint to checkpoint. To make the
comparison with SentryCam fair, :class:`UMAPProjector` starts each fit from the previous
frame's layout (umap-learn's ``init=`` array) and then Procrustes-aligns the result to the
previous frame (rotation/reflection, uniform scale and translation), so displayed coordinates
stay in the first frame's frame of reference. :class:`IndependentUMAPProjector` is the plain
per-checkpoint fit (spectral initialisation, no alignment): what a user gets by running UMAP on
each checkpoint separately, kept as the reference for the stability comparison.

UMAP has no inverse mapping fast enough to paint a background (umap-learn's
``inverse_transform`` takes ~0.3 s per point), so frames carry ``background=None`` and
``recon_pred=None`` and no PPR can be computed. Fits are seeded (``random_state``), which makes
umap-learn run single-threaded and deterministic; :class:`UnseededUMAPProjector`
(``umap-unseeded``) is the warm-started fit without a seed, on all cores (``n_jobs=-1``):
umap-learn's fastest honest setting, the one latency comparisons are made against. umap-learn is imported lazily: importing it
costs seconds (numba).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from ..checks import check_increasing
from ..errors import InputError
from ..records import Checkpoint, Frame
from ._training import Stage, resolve_device
from .base import Projector, RunHistory


class UMAPProjector(Projector):
    """umap-learn per checkpoint, initialised from and Procrustes-aligned to the previous frame.

    Parameters
    ----------
    n_neighbors, min_dist
        umap-learn's options.
    seed
        Makes every fit deterministic (the fit of checkpoint ``index`` uses
        ``random_state = seed + index``).
    n_epochs
        umap-learn's epochs; None keeps its default (500 below 10,000 points, else 200).
    device
        Accepted (and checked) so that one ``device`` can be passed to every method of a
        monitor; umap-learn runs on the CPU whatever it says.
    """

    method: ClassVar[str] = "umap"
    has_inverse: ClassVar[bool] = False
    warm_start: ClassVar[bool] = True
    seeded: ClassVar[bool] = True

    def __init__(
        self,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        seed: int = 0,
        n_epochs: int | None = None,
        device: str = "cpu",
    ) -> None:
        resolve_device(str(device))
        if n_neighbors < 2:
            raise InputError(f"n_neighbors must be >= 2, got {n_neighbors}")
        if min_dist < 0:
            raise InputError(f"min_dist must be >= 0, got {min_dist}")
        if n_epochs is not None and n_epochs < 1:
            raise InputError(f"n_epochs must be >= 1 or None, got {n_epochs}")
        self.n_neighbors = int(n_neighbors)
        self.min_dist = float(min_dist)
        self.seed = int(seed)
        self.n_epochs = n_epochs
        self._previous: np.ndarray | None = None
        self._last_index: int | None = None

    def update(self, checkpoint: Checkpoint) -> Frame:
        """Fit UMAP on all N points of ``checkpoint`` and return its frame (no background)."""
        self._check_order(checkpoint)
        timings: dict[str, float] = {}
        with Stage(timings, "fit"):
            raw = self._fit(checkpoint)
        with Stage(timings, "align"):
            embedding = self._place(raw)
        if not np.isfinite(embedding).all():
            raise FloatingPointError(
                f"UMAP produced non-finite coordinates at checkpoint {checkpoint.index}"
            )
        self._previous = embedding
        self._last_index = checkpoint.index
        return Frame(
            method=self.method,
            index=checkpoint.index,
            epoch=checkpoint.epoch,
            embedding=embedding,
            timings=timings,
        )

    def state_dict(self) -> dict[str, Any]:
        """Nothing beyond the stored frames: the previous layout is read back on resume."""
        return {}

    def resume(self, history: RunHistory, state: dict[str, Any] | None) -> None:
        """Continue after the last stored frame of this method (its layout seeds the next fit)."""
        indices = history.frame_indices(self.method)
        if not indices:
            self._previous, self._last_index = None, None
            return
        last = history.frame(self.method, indices[-1])
        self._previous = np.ascontiguousarray(last.embedding, dtype=np.float32)
        self._last_index = int(indices[-1])

    def _check_order(self, checkpoint: Checkpoint) -> None:
        check_increasing(checkpoint.index, self._last_index)
        if self._previous is not None and self._previous.shape[0] != checkpoint.n_points:
            raise InputError(
                f"the probe set changed size: checkpoint {checkpoint.index} has "
                f"{checkpoint.n_points} points, the previous frame {self._previous.shape[0]}"
            )
        if checkpoint.n_points <= self.n_neighbors:
            raise InputError(
                f"UMAP needs more probe points than n_neighbors={self.n_neighbors}, "
                f"got {checkpoint.n_points}"
            )

    def _fit(self, checkpoint: Checkpoint) -> np.ndarray:
        """One seeded umap-learn fit; torch's thread count is restored afterwards.

        umap-learn's numba kernels start an OpenMP pool that resets the process-wide OpenMP
        thread count (measured: torch went from 1 to 2 intra-op threads after one fit), which
        would silently change the speed and the float rounding of every torch projector that
        runs after UMAP in the same process (a monitor with several methods).
        """
        import umap

        threads = torch.get_num_threads()
        try:
            return self._fit_umap(umap, checkpoint)
        finally:
            torch.set_num_threads(threads)

    def _fit_umap(self, umap: Any, checkpoint: Checkpoint) -> np.ndarray:
        warm = self.warm_start and self._previous is not None
        reducer = umap.UMAP(
            n_neighbors=self.n_neighbors,
            min_dist=self.min_dist,
            n_components=2,
            n_epochs=self.n_epochs,
            init=self._previous if warm else "spectral",
            random_state=self.seed + checkpoint.index if self.seeded else None,
            n_jobs=1 if self.seeded else -1,
        )
        return np.asarray(reducer.fit_transform(checkpoint.features), dtype=np.float64)

    def _place(self, raw: np.ndarray) -> np.ndarray:
        if self.warm_start and self._previous is not None:
            raw = procrustes_align(raw, self._previous)
        return raw.astype(np.float32)


class UnseededUMAPProjector(UMAPProjector):
    """Warm-started and aligned like ``umap``, but unseeded on all cores: its fastest setting
    (non-deterministic; ``seed`` is accepted and ignored)."""

    method: ClassVar[str] = "umap-unseeded"
    seeded: ClassVar[bool] = False


class IndependentUMAPProjector(UMAPProjector):
    """A fresh UMAP fit per checkpoint (spectral init, no alignment): the unstabilised baseline."""

    method: ClassVar[str] = "umap-independent"
    warm_start: ClassVar[bool] = False


def procrustes_align(moving: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Similarity transform of ``moving`` [N, 2] that best matches ``reference`` in least squares.

    Orthogonal Procrustes with uniform scale and translation: rotation or reflection R, scale s
    and shift t minimising ``||s * (moving - mean) @ R + t - reference||``.
    """
    moving = np.asarray(moving, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if moving.shape != reference.shape or moving.ndim != 2:
        raise InputError(
            f"Procrustes needs two equal [N, d] arrays, got {moving.shape} and {reference.shape}"
        )
    mu_m, mu_r = moving.mean(axis=0), reference.mean(axis=0)
    a, b = moving - mu_m, reference - mu_r
    u, sigma, vt = np.linalg.svd(a.T @ b)
    rotation = u @ vt
    norm = float((a * a).sum())
    scale = float(sigma.sum()) / norm if norm > 0 else 1.0
    return scale * a @ rotation + mu_r
