"""Exports of a recorded run's frames to files other tools read (NumPy ``.npz`` here).

Also the pieces every export shares: :func:`exported_indices` (the frames to write, or a clear
error when there are none) and :func:`write_atomically` (a file is complete or absent).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ._atomic_io import atomic_write
from .errors import InputError, RunFormatError
from .projection.base import RunHistory
from .store import DamagedEntryWarning


def export_npz(store: RunHistory, method: str, path: str | Path) -> Path:
    """Write one method's frames as ``.npz`` (atomically: ``path`` is never partial).

    Parameters
    ----------
    store
        The run to export.
    method
        The projection method whose frames are exported.
    path
        The ``.npz`` file to write.

    Returns
    -------
    Path
        ``path``, holding ``emb`` [T,N,2] float32, ``epochs`` [T] int64, ``indices`` [T]
        (checkpoint indices) and ``recon_pred`` [T,N] int64 when every frame has one (methods
        with an inverse).
    """
    indices = exported_indices(store, method)
    frames = [store.frame(method, i) for i in indices]
    arrays = {
        "emb": np.stack([f.embedding for f in frames]).astype(np.float32),
        "epochs": np.asarray([f.epoch for f in frames], dtype=np.int64),
        "indices": np.asarray(indices, dtype=np.int64),
    }
    if all(f.recon_pred is not None for f in frames):
        arrays["recon_pred"] = np.stack([f.recon_pred for f in frames]).astype(np.int64)
    return write_atomically(Path(path), lambda handle: np.savez(handle, **arrays))


def exported_indices(store: RunHistory, method: str) -> list[int]:
    """Checkpoint indices with a readable ``method`` frame; InputError saying how to make them
    if none. A damaged frame is left out with a DamagedEntryWarning naming it.

    Parameters
    ----------
    store
        The run to export from.
    method
        The projection method whose frames are exported.

    Returns
    -------
    list of int
        Ascending checkpoint indices.
    """
    indices = store.frame_indices(method)
    if not indices:
        raise InputError(
            f"the run has no {method!r} frames to export; run `python -m sentrycam_widget "
            f"project RUN_DIR --method {method}` first"
        )
    readable = []
    for index in indices:
        try:
            store.frame(method, index)
        except RunFormatError as exc:
            warnings.warn(f"skipping damaged entry: {exc}", DamagedEntryWarning, stacklevel=2)
            continue
        readable.append(index)
    if not readable:
        raise InputError(f"every {method!r} frame of the run is damaged")
    return readable


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write a local file through a hidden fsynced temp file in its directory, renamed over it.

    Parameters
    ----------
    path
        The file to write; its parent directories are created.
    write
        Called with the open binary temp file.

    Returns
    -------
    Path
        ``path``, now complete (a failure leaves no temp file and the old ``path`` untouched).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, write)
    return path
