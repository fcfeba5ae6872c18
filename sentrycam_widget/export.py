"""Exports of a recorded run's frames to files other tools read (NumPy ``.npz`` here)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import InputError
from .projection.base import RunHistory


def export_npz(store: RunHistory, method: str, path: str | Path) -> Path:
    """Write one method's frames as ``.npz``: ``emb`` [T,N,2] float32, ``epochs`` [T] int64,
    ``indices`` [T] (checkpoint indices) and ``recon_pred`` [T,N] int64 when every frame has one
    (methods with an inverse). Written to a temp file and renamed, so ``path`` is never partial.
    """
    indices = store.frame_indices(method)
    if not indices:
        raise InputError(
            f"the run has no {method!r} frames to export; run `python -m sentrycam_widget "
            f"project RUN_DIR --method {method}` first"
        )
    frames = [store.frame(method, i) for i in indices]
    arrays = {
        "emb": np.stack([f.embedding for f in frames]).astype(np.float32),
        "epochs": np.asarray([f.epoch for f in frames], dtype=np.int64),
        "indices": np.asarray(indices, dtype=np.int64),
    }
    if all(f.recon_pred is not None for f in frames):
        arrays["recon_pred"] = np.stack([f.recon_pred for f in frames]).astype(np.int64)
    return _write_npz_atomically(Path(path), arrays)


def _write_npz_atomically(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
