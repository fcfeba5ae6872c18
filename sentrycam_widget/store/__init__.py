"""The run directory: a documented, versioned, append-only record of one training run.

A run is recorded on one machine and viewed on another, so this format is the stable interface
between recording and viewing. Layout (format ``sentrycam-run``, version 1; the full
description is ``docs/run-format.md``)::

    RUN/
      manifest.json                   format, version, N, D, classes, layer, probe summary
      labels.npy                      int64 [N], written once
      images.npy                      optional uint8 thumbnails [N, h, w] or [N, h, w, 3]
      checkpoints/000000.npz          features f32 [N, D], logits f32 [N, C]?, head, meta JSON
      checkpoints/000000.<writer>.head.pt2  only for a torch head: its torch.export program
      frames/<method>/000000.npz      embedding f32 [N, 2], background?, recon_pred?, meta JSON
      frames/<method>/000000.state.pt the projector's state after that frame (for resume)

The run may be a local path or an fsspec URL (``s3://``, ``gs://``, ``memory://``); files go
through :mod:`sentrycam_widget.filesystem`. On disk every file is written to a temporary name
starting with ``.`` in the same directory, flushed, fsynced and published under its final name,
then the directory is fsynced; on an object store each file is one whole-object PUT. Entries are
created exclusively (a hard link; a conditional PUT): of two writers racing for one index
exactly one stores it. Readers discover entries by listing final names only (``<digits>.npz``),
so a reader sees complete entries only; a process killed mid-write loses at most the entry in
flight, and its temporary file is removed by the next :meth:`RunStore.open`. A frame's
projector state is written before the frame, so a killed run resumes exactly. A damaged file
raises :class:`RunFormatError` naming it when read directly; bulk readers (``frames``,
``checkpoints``) skip it, record it in ``damaged`` and warn, so the rest of the run still
loads. Any number of readers.
"""

from .._jsonio import read_json, write_json
from ._format import FORMAT, VERSION
from ._run import DamagedEntry, DamagedEntryWarning, RunStore

__all__ = [
    "FORMAT",
    "VERSION",
    "DamagedEntry",
    "DamagedEntryWarning",
    "RunStore",
    "read_json",
    "write_json",
]
