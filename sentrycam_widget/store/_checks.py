"""What an entry must match before it is appended to a run, and leftovers of killed writers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._atomic_io import remove_stale_temps, writer_is_gone
from ..errors import InputError
from ..records import Checkpoint, Frame

if TYPE_CHECKING:
    from ._run import RunStore

_HEAD_FILE = re.compile(
    r"^(?P<index>\d{6,})\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[0-9a-f]{8}\.head\.pt2$"
)


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
    if not store.files.exists(store._checkpoint_key(frame.index)):
        raise InputError(
            f"frame {frame.method}/{frame.index}: checkpoint {frame.index} is not stored in "
            f"{store.location}; append the checkpoint first"
        )


def remove_leftovers(root: Path) -> None:
    """Remove, in a run directory on disk, the temp files of writers that were killed and the
    torch-head files whose writer died before it stored their checkpoint."""
    directories = [root, root / "checkpoints"]
    if (root / "frames").is_dir():
        directories += [p for p in (root / "frames").iterdir() if p.is_dir()]
    for directory in directories:
        remove_stale_temps(directory)
    for head in (root / "checkpoints").glob("*.head.pt2"):
        match = _HEAD_FILE.match(head.name)
        if match is None or not writer_is_gone(match["host"], int(match["pid"])):
            continue
        if not (root / "checkpoints" / f"{match['index']}.npz").exists():
            head.unlink(missing_ok=True)
