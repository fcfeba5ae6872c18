"""What an entry must match before it is appended to a run (probe set, dimensions, order)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ..records import Checkpoint, Frame

if TYPE_CHECKING:
    from ._run import RunStore


def check_checkpoint(store: RunStore, checkpoint: Checkpoint) -> None:
    """Refuse a checkpoint that does not fit the run (N, labels, D, classes), naming why."""
    if not isinstance(checkpoint, Checkpoint):
        raise InputError(f"expected a Checkpoint, got {type(checkpoint).__name__}")
    if checkpoint.index < 0:
        raise InputError(f"checkpoint index must be >= 0, got {checkpoint.index}")
    if checkpoint.n_points != store.n_points:
        raise InputError(
            f"checkpoint {checkpoint.index} has N = {checkpoint.n_points} probe points, the run "
            f"at {store.path} has {store.n_points}"
        )
    if not np.array_equal(checkpoint.labels, store.labels):
        raise InputError(
            f"checkpoint {checkpoint.index} has different probe labels than the run at {store.path}"
        )
    n_features = store.n_features
    if n_features is not None and checkpoint.n_features != n_features:
        raise InputError(
            f"checkpoint {checkpoint.index} has D = {checkpoint.n_features} features, the run at "
            f"{store.path} has {n_features}"
        )
    if checkpoint.logits is not None and checkpoint.logits.shape[1] <= int(store.labels.max()):
        raise InputError(
            f"checkpoint {checkpoint.index} has logits for {checkpoint.logits.shape[1]} classes "
            f"but the labels go up to {int(store.labels.max())}"
        )


def check_frame(store: RunStore, frame: Frame) -> None:
    """Refuse a frame that does not fit the run or whose checkpoint is not stored."""
    if not isinstance(frame, Frame):
        raise InputError(f"expected a Frame, got {type(frame).__name__}")
    store._method_dir(frame.method)
    if frame.embedding.shape != (store.n_points, 2):
        raise InputError(
            f"frame {frame.method}/{frame.index} has embedding {frame.embedding.shape}, the run "
            f"has N = {store.n_points} points"
        )
    if frame.recon_pred is not None and frame.recon_pred.shape != (store.n_points,):
        raise InputError(
            f"frame {frame.method}/{frame.index} has recon_pred {frame.recon_pred.shape}, "
            f"expected [{store.n_points}]"
        )
    if not store._checkpoint_path(frame.index).exists():
        raise InputError(
            f"frame {frame.method}/{frame.index}: checkpoint {frame.index} is not stored in "
            f"{store.path}; append the checkpoint first"
        )
