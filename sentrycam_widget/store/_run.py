"""RunStore: reading and appending to one run directory, atomically, while others read it.

The directory may be local or any fsspec URL: every file goes through a
:class:`~sentrycam_widget.filesystem.RunDir` (temp file + fsync + rename on disk, one whole
object per file on object stores), addressed by keys such as ``"checkpoints/000003.npz"``.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .._jsonio import json_bytes
from ..checks import check_thumbnails
from ..errors import InputError, RunFormatError
from ..filesystem import LocalDir, RunDir, run_dir
from ..records import Checkpoint
from ._checks import check_checkpoint, remove_leftovers
from ._format import (
    CHECKPOINT_KEYS,
    FORMAT,
    MANIFEST,
    VERSION,
    class_count,
    entry_indices,
    entry_meta,
    json_array,
    labels_array,
    library_version,
    load_npy,
    load_npz,
    read_manifest,
)
from ._frames import FrameStore
from ._heads import read_head, write_head


class DamagedEntryWarning(UserWarning):
    """A file of a run could not be read; the rest of the run was loaded without it."""


@dataclass(frozen=True)
class DamagedEntry:
    """A file a bulk read skipped, and why."""

    path: Path | str
    reason: str


class RunStore(FrameStore):
    """Read and append to a run directory (implements the ``RunHistory`` protocol).

    Create with :meth:`create`, reopen with :meth:`open`, each with a local path or an fsspec
    URL (``s3://bucket/runs/a``, ``memory://...``). Writes are atomic; methods are safe to call
    from one writer thread while other threads (or processes, or machines) read.

    Parameters
    ----------
    files
        The run directory's files (use :meth:`create` or :meth:`open` rather than this).
    manifest
        Its parsed ``manifest.json``.
    """

    def __init__(self, files: RunDir, manifest: dict[str, Any]) -> None:
        self.files = files
        self._manifest = manifest
        self._lock = threading.Lock()
        self._damaged: dict[str, str] = {}
        self._labels: np.ndarray | None = None

    @property
    def location(self) -> str:
        """The run as given: a local path or a URL."""
        return self.files.location

    @property
    def path(self) -> Path | str:
        """The run's local :class:`~pathlib.Path`, or its URL (str) when it is not on disk."""
        return self.files.where("")

    @property
    def name(self) -> str:
        """The run directory's last name (e.g. for titles)."""
        return self.location.rstrip("/").rsplit("/", 1)[-1]

    # ---------------------------------------------------------------- create / open
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str] | RunDir,
        labels: Any,
        *,
        n_features: int | None = None,
        n_classes: int | None = None,
        class_names: list[str] | None = None,
        layer: str | None = None,
        probe: dict[str, Any] | None = None,
        images: np.ndarray | None = None,
        exist_ok: bool = False,
    ) -> RunStore:
        """Start a new run at ``path`` (a local path or an fsspec URL) for these ``labels``.

        The manifest is written last, so a reader never finds a run without its labels.

        Parameters
        ----------
        path
            The run directory to create (it must not exist or be empty).
        labels
            Integer class indices [N] of the probe set.
        n_features
            D of the recorded layer; left out, the first checkpoint fixes it.
        n_classes
            Number of classes (default: from the labels and ``class_names``).
        class_names
            A name per class, shown in the widget.
        layer
            The recorded layer's name, kept in the manifest.
        probe
            A JSON-ready summary of the probe set (``ProbeSet.describe()``).
        images
            uint8 hover thumbnails [N, h, w] or [N, h, w, 3].
        exist_ok
            Reopen an existing run with the same labels instead of failing.

        Returns
        -------
        RunStore
            The new (or reopened) run.
        """
        files = run_dir(path)
        labels = labels_array(labels)
        if files.exists(MANIFEST):
            if not exist_ok:
                raise InputError(
                    f"{files.location} already holds a run; use RunStore.open() or exist_ok=True"
                )
            store = cls.open(files)
            if not np.array_equal(store.labels, labels):
                raise InputError(f"{files.location} holds a run with different probe labels")
            return store
        if isinstance(files, LocalDir) and files.root.exists() and not files.root.is_dir():
            raise InputError(f"{files.location} is a file, not a directory for a run")
        if not files.is_empty():
            raise InputError(f"{files.location} exists, is not empty and is not a run directory")
        n_classes = class_count(labels, n_classes, class_names)
        images = None if images is None else check_thumbnails(images, labels.shape[0])
        files.write("labels.npy", lambda f: np.save(f, labels))
        if images is not None:
            files.write("images.npy", lambda f: np.save(f, images))
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "n_points": int(labels.shape[0]),
            "n_features": None if n_features is None else int(n_features),
            "n_classes": n_classes,
            "class_names": None if class_names is None else [str(c) for c in class_names],
            "layer": layer,
            "probe": dict(probe or {}),
            "images": images is not None,
            "writer": library_version(),
        }
        files.write_bytes(MANIFEST, json_bytes(manifest))
        return cls(files, manifest)

    @classmethod
    def open(cls, path: str | os.PathLike[str] | RunDir) -> RunStore:
        """Open an existing run (possibly still being written), local or at an fsspec URL.

        On disk, temp files and torch-head files of killed writers are removed (where writable).

        Parameters
        ----------
        path
            The run directory: a local path, an fsspec URL or a RunDir.

        Returns
        -------
        RunStore
            The run; a RunFormatError names the problem if it is not a readable run.
        """
        files = run_dir(path)
        store = cls(files, read_manifest(files))
        if isinstance(files, LocalDir):  # object stores have no temp files
            remove_leftovers(files.root)
        return store

    # ---------------------------------------------------------------- run-level facts
    @property
    def manifest(self) -> dict[str, Any]:
        """A copy of the manifest (re-read from disk while ``n_features`` is still unknown)."""
        if self._manifest.get("n_features") is None:
            self._refresh_manifest()
        return json.loads(json.dumps(self._manifest))

    @property
    def n_points(self) -> int:
        return int(self._manifest["n_points"])

    @property
    def n_features(self) -> int | None:
        value = self.manifest["n_features"]
        return None if value is None else int(value)

    @property
    def n_classes(self) -> int:
        return int(self.manifest["n_classes"])

    @property
    def class_names(self) -> list[str] | None:
        return self._manifest.get("class_names")

    @property
    def layer(self) -> str | None:
        return self._manifest.get("layer")

    @property
    def labels(self) -> np.ndarray:
        """int64 [N] probe labels (read-only array)."""
        if self._labels is None:
            labels = load_npy(self.files, "labels.npy")
            if labels.shape != (self.n_points,) or labels.dtype.kind not in "iu":
                raise RunFormatError(
                    f"{self.files.describe('labels.npy')}: expected int labels [{self.n_points}], got "
                    f"{labels.dtype} {labels.shape}"
                )
            labels = labels.astype(np.int64)
            labels.flags.writeable = False
            self._labels = labels
        return self._labels

    @property
    def images(self) -> np.ndarray | None:
        """uint8 probe thumbnails [N, h, w] or [N, h, w, 3], or None when the run has none."""
        if not self._manifest.get("images"):
            return None
        images = load_npy(self.files, "images.npy")
        if images.dtype != np.uint8 or images.shape[:1] != (self.n_points,):
            where = self.files.describe("images.npy")
            raise RunFormatError(f"{where}: expected uint8 [N, h, w(, 3)]")
        return images

    @property
    def damaged(self) -> list[DamagedEntry]:
        """Files that bulk reads skipped because they could not be read, with the reason."""
        with self._lock:
            return [DamagedEntry(self.files.where(k), r) for k, r in sorted(self._damaged.items())]

    # ---------------------------------------------------------------- checkpoints
    def checkpoint_indices(self) -> list[int]:
        """Indices of the complete checkpoint files.

        Returns
        -------
        list of int
            Ascending checkpoint indices.
        """
        return entry_indices(self.files, "checkpoints")

    def append_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store one checkpoint (atomically); it must match the run's probe set and layer.

        Parameters
        ----------
        checkpoint
            The checkpoint to append; its index must not be stored yet.
        """
        check_checkpoint(self, checkpoint)
        key = self._checkpoint_key(checkpoint.index)
        if self.files.exists(key):
            where = self.files.describe(key)
            raise InputError(f"checkpoint {checkpoint.index} is already stored at {where}")
        arrays: dict[str, np.ndarray] = {"features": checkpoint.features}
        if checkpoint.logits is not None:
            arrays["logits"] = checkpoint.logits
        head_kind, head_key = write_head(self.files, checkpoint, arrays)
        meta = {
            "version": VERSION,
            "index": int(checkpoint.index),
            "epoch": int(checkpoint.epoch),
            "step": None if checkpoint.step is None else int(checkpoint.step),
            "scalars": {k: float(v) for k, v in checkpoint.scalars.items()},
            "head": head_kind,
        }
        if head_key is not None:
            meta["head_file"] = head_key.rsplit("/", 1)[-1]
        arrays["meta"] = json_array(meta)
        self._fix_manifest_dims(checkpoint)
        try:
            stored = self.files.create_exclusive(key, lambda f: np.savez(f, **arrays))
        except BaseException:
            if head_key is not None:
                self.files.remove(head_key)
            raise
        if not stored:  # another writer stored this index first
            if head_key is not None:
                self.files.remove(head_key)
            where = self.files.describe(key)
            raise InputError(f"checkpoint {checkpoint.index} is already stored at {where}")

    def checkpoint(self, index: int) -> Checkpoint:
        """Load one checkpoint.

        Parameters
        ----------
        index
            The checkpoint's index.

        Returns
        -------
        Checkpoint
            The checkpoint; a RunFormatError names the file if it is missing or damaged.
        """
        key = self._checkpoint_key(index)
        path = self.files.describe(key)
        arrays = load_npz(self.files, key, CHECKPOINT_KEYS)
        meta = entry_meta(path, arrays, index)
        features = arrays["features"]
        n_features = self.n_features
        if features.ndim != 2 or features.shape[0] != self.n_points:
            raise RunFormatError(f"{path}: features have shape {features.shape}, expected [N, D]")
        if n_features is not None and features.shape[1] != n_features:
            raise RunFormatError(
                f"{path}: features have D = {features.shape[1]}, run has {n_features}"
            )
        head = read_head(self.files, path, meta, arrays)
        try:
            checkpoint = Checkpoint(
                index=int(meta["index"]),
                epoch=int(meta["epoch"]),
                features=features,
                labels=self.labels,
                logits=arrays.get("logits"),
                head=head,
                scalars=dict(meta.get("scalars", {})),
                step=meta["step"],
            )
        except (TypeError, ValueError) as exc:
            raise RunFormatError(f"{path}: {exc}") from exc
        self._mark_good(key)
        return checkpoint

    def checkpoints(self) -> Iterator[Checkpoint]:
        """Every readable checkpoint in index order; damaged ones are skipped and reported.

        A damaged run-level file (``labels.npy``) raises RunFormatError naming it instead.

        Yields
        ------
        Checkpoint
            One checkpoint after another (see :attr:`damaged` for those skipped).
        """
        self.labels  # noqa: B018 - read once here, so its damage is not blamed on every entry
        for index in self.checkpoint_indices():
            checkpoint = self._read_or_skip(
                self._checkpoint_key(index), lambda i=index: self.checkpoint(i)
            )
            if checkpoint is not None:
                yield checkpoint

    def checkpoint_info(self) -> list[dict[str, Any]]:
        """``{"index", "epoch", "step", "scalars"}`` of every readable checkpoint, without features.

        Returns
        -------
        list of dict
            ``{"index", "epoch", "step", "scalars"}`` per checkpoint, in index order; ``step``
            is None for checkpoints recorded without one (and in runs written before steps were
            recorded).
        """
        infos = []
        for index in self.checkpoint_indices():
            key = self._checkpoint_key(index)
            meta = self._read_or_skip(
                key,
                lambda k=key, i=index: entry_meta(
                    self.files.describe(k), load_npz(self.files, k, ("meta",), only=("meta",)), i
                ),
            )
            if meta is not None:
                infos.append(
                    {
                        "index": index,
                        "epoch": int(meta["epoch"]),
                        "step": meta["step"],
                        "scalars": meta.get("scalars", {}),
                    }
                )
        return infos

    def epochs(self) -> dict[int, int]:
        """The user's epoch (or step) number of each checkpoint.

        Returns
        -------
        dict of int to int
            Checkpoint index -> epoch.
        """
        return {info["index"]: info["epoch"] for info in self.checkpoint_info()}

    # ---------------------------------------------------------------- internals
    @staticmethod
    def _checkpoint_key(index: int) -> str:
        return f"checkpoints/{int(index):06d}.npz"

    def _refresh_manifest(self) -> None:
        manifest = read_manifest(self.files)
        with self._lock:
            self._manifest = manifest

    def _fix_manifest_dims(self, checkpoint: Checkpoint) -> None:
        """Record D (and a larger C from the logits) in the manifest at the first checkpoint."""
        manifest = self.manifest
        n_classes = manifest["n_classes"]
        if checkpoint.logits is not None:
            n_classes = max(n_classes, int(checkpoint.logits.shape[1]))
        if manifest["n_features"] == checkpoint.n_features and manifest["n_classes"] == n_classes:
            return
        manifest["n_features"] = checkpoint.n_features
        manifest["n_classes"] = n_classes
        self.files.write_bytes(MANIFEST, json_bytes(manifest))
        with self._lock:
            self._manifest = manifest

    def _read_or_skip(self, key: str, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except RunFormatError as exc:
            with self._lock:
                self._damaged[key] = str(exc)
            warnings.warn(f"skipping damaged file: {exc}", DamagedEntryWarning, stacklevel=3)
            return None

    def _mark_good(self, key: str) -> None:
        with self._lock:
            self._damaged.pop(key, None)

    def __repr__(self) -> str:
        return f"RunStore({self.location!r}, checkpoints={len(self.checkpoint_indices())}, methods={self.methods()})"
