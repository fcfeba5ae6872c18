"""RunStore: reading and appending to one run directory, atomically, while others read it."""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._atomic_io import atomic_write
from .._jsonio import write_json
from ..errors import InputError, RunFormatError
from ..records import Checkpoint, Frame
from ._format import (
    CHECKPOINT_KEYS,
    FORMAT,
    FRAME_KEYS,
    MANIFEST,
    METHOD,
    STATE,
    VERSION,
    background_from,
    class_count,
    entry_indices,
    entry_meta,
    images_array,
    json_array,
    labels_array,
    library_version,
    load_npy,
    load_npz,
    read_manifest,
)
from ._heads import read_head, write_head
from ._state import decode_state, encode_state


class DamagedEntryWarning(UserWarning):
    """A file of a run could not be read; the rest of the run was loaded without it."""


@dataclass(frozen=True)
class DamagedEntry:
    """A file a bulk read skipped, and why."""

    path: Path
    reason: str


class RunStore:
    """Read and append to a run directory (implements the ``RunHistory`` protocol).

    Create with :meth:`create`, reopen with :meth:`open`. Writes are atomic; methods are safe
    to call from one writer thread while other threads (or processes) read.
    """

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self._manifest = manifest
        self._lock = threading.Lock()
        self._damaged: dict[Path, str] = {}
        self._labels: np.ndarray | None = None

    # ---------------------------------------------------------------- create / open
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
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
        """Start a new run at ``path`` for a probe set with these ``labels``.

        ``n_features`` may be left out; the first checkpoint then fixes it. With ``exist_ok``
        an existing run with the same labels is reopened instead.
        """
        root = Path(path)
        labels = labels_array(labels)
        if (root / MANIFEST).exists():
            if not exist_ok:
                raise InputError(
                    f"{root} already holds a run; use RunStore.open() or exist_ok=True"
                )
            store = cls.open(root)
            if not np.array_equal(store.labels, labels):
                raise InputError(f"{root} holds a run with different probe labels")
            return store
        if root.exists() and any(root.iterdir()):
            raise InputError(f"{root} exists, is not empty and is not a run directory")
        n_classes = class_count(labels, n_classes, class_names)
        images = None if images is None else images_array(images, labels.shape[0])
        (root / "checkpoints").mkdir(parents=True, exist_ok=True)
        (root / "frames").mkdir(exist_ok=True)
        atomic_write(root / "labels.npy", lambda f: np.save(f, labels))
        if images is not None:
            atomic_write(root / "images.npy", lambda f: np.save(f, images))
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
        write_json(root / MANIFEST, manifest)
        return cls(root, manifest)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunStore:
        """Open an existing run (possibly still being written) for reading and appending."""
        root = Path(path)
        return cls(root, read_manifest(root / MANIFEST))

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
            labels = load_npy(self.path / "labels.npy")
            if labels.shape != (self.n_points,) or labels.dtype.kind not in "iu":
                raise RunFormatError(
                    f"{self.path / 'labels.npy'}: expected int labels [{self.n_points}], got "
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
        images = load_npy(self.path / "images.npy")
        if images.dtype != np.uint8 or images.shape[:1] != (self.n_points,):
            raise RunFormatError(f"{self.path / 'images.npy'}: expected uint8 [N, h, w(, 3)]")
        return images

    @property
    def damaged(self) -> list[DamagedEntry]:
        """Files that bulk reads skipped because they could not be read, with the reason."""
        with self._lock:
            return [DamagedEntry(p, r) for p, r in sorted(self._damaged.items())]

    # ---------------------------------------------------------------- checkpoints
    def checkpoint_indices(self) -> list[int]:
        """Indices of the complete checkpoint files, ascending."""
        return entry_indices(self.path / "checkpoints")

    def append_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store one checkpoint (atomically); it must match the run's probe set and layer."""
        self._check_checkpoint(checkpoint)
        path = self._checkpoint_path(checkpoint.index)
        if path.exists():
            raise InputError(f"checkpoint {checkpoint.index} is already stored at {path}")
        arrays: dict[str, np.ndarray] = {"features": checkpoint.features}
        if checkpoint.logits is not None:
            arrays["logits"] = checkpoint.logits
        head_kind = write_head(self.path, checkpoint, arrays)
        meta = {
            "version": VERSION,
            "index": int(checkpoint.index),
            "epoch": int(checkpoint.epoch),
            "step": None if checkpoint.step is None else int(checkpoint.step),
            "scalars": {k: float(v) for k, v in checkpoint.scalars.items()},
            "head": head_kind,
        }
        arrays["meta"] = json_array(meta)
        self._fix_manifest_dims(checkpoint)
        atomic_write(path, lambda f: np.savez(f, **arrays))

    def checkpoint(self, index: int) -> Checkpoint:
        """Load checkpoint ``index``; RunFormatError naming the file if it is missing or damaged."""
        path = self._checkpoint_path(index)
        arrays = load_npz(path, CHECKPOINT_KEYS)
        meta = entry_meta(path, arrays, index)
        features = arrays["features"]
        n_features = self.n_features
        if features.ndim != 2 or features.shape[0] != self.n_points:
            raise RunFormatError(f"{path}: features have shape {features.shape}, expected [N, D]")
        if n_features is not None and features.shape[1] != n_features:
            raise RunFormatError(
                f"{path}: features have D = {features.shape[1]}, run has {n_features}"
            )
        head = read_head(self.path, path, meta, arrays)
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
        self._mark_good(path)
        return checkpoint

    def checkpoints(self) -> Iterator[Checkpoint]:
        """Every readable checkpoint in index order; damaged ones are skipped and reported."""
        for index in self.checkpoint_indices():
            checkpoint = self._read_or_skip(
                self._checkpoint_path(index), lambda i=index: self.checkpoint(i)
            )
            if checkpoint is not None:
                yield checkpoint

    def checkpoint_info(self) -> list[dict[str, Any]]:
        """``{"index", "epoch", "step", "scalars"}`` of every readable checkpoint, without features.

        ``step`` is None for checkpoints recorded without one (and in runs written before
        steps were recorded).
        """
        infos = []
        for index in self.checkpoint_indices():
            path = self._checkpoint_path(index)
            meta = self._read_or_skip(
                path,
                lambda p=path, i=index: entry_meta(p, load_npz(p, ("meta",), only=("meta",)), i),
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
        """Checkpoint index -> the user's epoch/step number."""
        return {info["index"]: info["epoch"] for info in self.checkpoint_info()}

    # ---------------------------------------------------------------- frames
    def methods(self) -> list[str]:
        """Projection methods with a frames directory, sorted."""
        root = self.path / "frames"
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if p.is_dir() and METHOD.match(p.name))

    def frame_indices(self, method: str) -> list[int]:
        """Checkpoint indices that have a complete frame of ``method``, ascending."""
        return entry_indices(self._method_dir(method))

    def missing_frames(self, method: str) -> list[int]:
        """Stored checkpoints that have no frame of ``method`` yet, ascending."""
        done = set(self.frame_indices(method))
        return [i for i in self.checkpoint_indices() if i not in done]

    def append_frame(self, frame: Frame, *, replace: bool = False) -> None:
        """Store one frame (atomically). Its checkpoint must be stored; ``replace`` overwrites."""
        self._check_frame(frame)
        path = self._frame_path(frame.method, frame.index)
        if path.exists() and not replace:
            raise InputError(f"frame {frame.method}/{frame.index} is already stored at {path}")
        arrays: dict[str, np.ndarray] = {"embedding": frame.embedding}
        if frame.background is not None:
            arrays["bg_classes"] = frame.background.classes
            arrays["bg_alpha"] = frame.background.alpha
            arrays["bg_extent"] = np.asarray(frame.background.extent, dtype=np.float64)
        if frame.recon_pred is not None:
            arrays["recon_pred"] = frame.recon_pred
        meta = {
            "version": VERSION,
            "method": frame.method,
            "index": int(frame.index),
            "epoch": int(frame.epoch),
            "metrics": frame.metrics,
            "timings": frame.timings,
            "alerts": frame.alerts,
        }
        arrays["meta"] = json_array(meta)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: np.savez(f, **arrays))

    def frame(self, method: str, index: int) -> Frame:
        """Load one frame; RunFormatError naming the file if it is missing or damaged."""
        path = self._frame_path(method, index)
        arrays = load_npz(path, FRAME_KEYS)
        meta = entry_meta(path, arrays, index)
        if meta.get("method") != method:
            raise RunFormatError(
                f"{path}: frame of method {meta.get('method')!r}, expected {method!r}"
            )
        embedding = arrays["embedding"]
        if embedding.shape != (self.n_points, 2):
            raise RunFormatError(
                f"{path}: embedding has shape {embedding.shape}, expected [{self.n_points}, 2]"
            )
        try:
            frame = Frame(
                method=method,
                index=int(meta["index"]),
                epoch=int(meta["epoch"]),
                embedding=embedding,
                background=background_from(path, arrays),
                recon_pred=arrays.get("recon_pred"),
                metrics=dict(meta.get("metrics", {})),
                timings=dict(meta.get("timings", {})),
                alerts=list(meta.get("alerts", [])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RunFormatError(f"{path}: {exc}") from exc
        self._mark_good(path)
        return frame

    def frames(self, method: str) -> list[Frame]:
        """Every readable frame of ``method`` in index order; damaged ones are skipped and reported."""
        frames = []
        for index in self.frame_indices(method):
            path = self._frame_path(method, index)
            frame = self._read_or_skip(path, lambda i=index: self.frame(method, i))
            if frame is not None:
                frames.append(frame)
        return frames

    # ---------------------------------------------------------------- projector state
    def save_projector_state(self, method: str, index: int, state: Mapping[str, Any]) -> None:
        """Keep the projector's state after checkpoint ``index`` so a later process can resume."""
        payload = {
            "version": VERSION,
            "method": method,
            "index": int(index),
            "state": encode_state(state, "state"),
        }
        path = self._method_dir(method) / STATE
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: torch.save(payload, f))

    def load_projector_state(self, method: str) -> tuple[int, dict[str, Any]] | None:
        """``(index, state)`` saved by :meth:`save_projector_state`, or None if there is none."""
        path = self._method_dir(method) / STATE
        if not path.exists():
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if payload["version"] != VERSION or payload["method"] != method:
                raise RunFormatError(f"{path}: unexpected version or method in projector state")
            return int(payload["index"]), decode_state(payload["state"])
        except RunFormatError:
            raise
        except Exception as exc:
            raise RunFormatError(f"{path}: damaged projector state ({exc})") from exc

    # ---------------------------------------------------------------- internals
    def _checkpoint_path(self, index: int) -> Path:
        return self.path / "checkpoints" / f"{int(index):06d}.npz"

    def _method_dir(self, method: str) -> Path:
        if not isinstance(method, str) or not METHOD.match(method):
            raise InputError(f"invalid method name {method!r}: use letters, digits, '_', '.', '-'")
        return self.path / "frames" / method

    def _frame_path(self, method: str, index: int) -> Path:
        return self._method_dir(method) / f"{int(index):06d}.npz"

    def _refresh_manifest(self) -> None:
        manifest = read_manifest(self.path / MANIFEST)
        with self._lock:
            self._manifest = manifest

    def _check_checkpoint(self, checkpoint: Checkpoint) -> None:
        if not isinstance(checkpoint, Checkpoint):
            raise InputError(f"expected a Checkpoint, got {type(checkpoint).__name__}")
        if checkpoint.index < 0:
            raise InputError(f"checkpoint index must be >= 0, got {checkpoint.index}")
        if checkpoint.n_points != self.n_points:
            raise InputError(
                f"checkpoint {checkpoint.index} has N = {checkpoint.n_points} probe points, the run "
                f"at {self.path} has {self.n_points}"
            )
        if not np.array_equal(checkpoint.labels, self.labels):
            raise InputError(
                f"checkpoint {checkpoint.index} has different probe labels than the run at {self.path}"
            )
        n_features = self.n_features
        if n_features is not None and checkpoint.n_features != n_features:
            raise InputError(
                f"checkpoint {checkpoint.index} has D = {checkpoint.n_features} features, the run at "
                f"{self.path} has {n_features}"
            )
        if checkpoint.logits is not None and checkpoint.logits.shape[1] <= int(self.labels.max()):
            raise InputError(
                f"checkpoint {checkpoint.index} has logits for {checkpoint.logits.shape[1]} classes "
                f"but the labels go up to {int(self.labels.max())}"
            )

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
        write_json(self.path / MANIFEST, manifest)
        with self._lock:
            self._manifest = manifest

    def _check_frame(self, frame: Frame) -> None:
        if not isinstance(frame, Frame):
            raise InputError(f"expected a Frame, got {type(frame).__name__}")
        self._method_dir(frame.method)
        if frame.embedding.shape != (self.n_points, 2):
            raise InputError(
                f"frame {frame.method}/{frame.index} has embedding {frame.embedding.shape}, the run "
                f"has N = {self.n_points} points"
            )
        if frame.recon_pred is not None and frame.recon_pred.shape != (self.n_points,):
            raise InputError(
                f"frame {frame.method}/{frame.index} has recon_pred {frame.recon_pred.shape}, "
                f"expected [{self.n_points}]"
            )
        if not self._checkpoint_path(frame.index).exists():
            raise InputError(
                f"frame {frame.method}/{frame.index}: checkpoint {frame.index} is not stored in "
                f"{self.path}; append the checkpoint first"
            )

    def _read_or_skip(self, path: Path, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except RunFormatError as exc:
            with self._lock:
                self._damaged[path] = str(exc)
            warnings.warn(f"skipping damaged file: {exc}", DamagedEntryWarning, stacklevel=3)
            return None

    def _mark_good(self, path: Path) -> None:
        with self._lock:
            self._damaged.pop(path, None)

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r}, checkpoints={len(self.checkpoint_indices())}, methods={self.methods()})"
