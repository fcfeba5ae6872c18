"""The run directory: a documented, versioned, append-only record of one training run.

A run is recorded on one machine and viewed on another, so this format is the stable interface
between recording and viewing. Layout (format ``sentrycam-run``, version 1; the full
description is ``docs/run-format.md``)::

    RUN/
      manifest.json                   format, version, N, D, classes, layer, probe summary
      labels.npy                      int64 [N], written once
      images.npy                      optional uint8 thumbnails [N, h, w] or [N, h, w, 3]
      checkpoints/000000.npz          features f32 [N, D], logits f32 [N, C]?, head, meta JSON
      checkpoints/000000.head.pt2     only for a torch head: torch.export program of the head
      frames/<method>/000000.npz      embedding f32 [N, 2], background?, recon_pred?, meta JSON
      frames/<method>/state.pt        the projector's latest state (for resume) and its index

Every file is written to a temporary name starting with ``.`` in the same directory, flushed,
fsynced and renamed over its final name (``os.replace``), then the directory is fsynced.
Readers discover entries by listing final names only (``<digits>.npz``), so a reader sees
complete entries only, and a process killed mid-write loses at most the entry in flight (its
temporary file is ignored). A damaged file raises :class:`RunFormatError` naming it when read
directly; bulk readers (``frames``, ``checkpoints``) skip it, record it in ``damaged`` and warn,
so the rest of the run still loads. One writer (thread or process) at a time; any number of
readers.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from .errors import InputError, RunFormatError
from .records import Background, Checkpoint, Frame, Head, LinearHead, TorchHead

FORMAT = "sentrycam-run"
VERSION = 1

_ENTRY = re.compile(r"^(\d{6,})\.npz$")
_METHOD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MANIFEST = "manifest.json"
_STATE = "state.pt"
_CHECKPOINT_KEYS = ("features", "meta")
_FRAME_KEYS = ("embedding", "meta")


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
        labels = _labels_array(labels)
        if (root / _MANIFEST).exists():
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
        n_classes = _class_count(labels, n_classes, class_names)
        images = None if images is None else _images_array(images, labels.shape[0])
        (root / "checkpoints").mkdir(parents=True, exist_ok=True)
        (root / "frames").mkdir(exist_ok=True)
        _atomic_write(root / "labels.npy", lambda f: np.save(f, labels))
        if images is not None:
            _atomic_write(root / "images.npy", lambda f: np.save(f, images))
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
            "writer": _library_version(),
        }
        write_json(root / _MANIFEST, manifest)
        return cls(root, manifest)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunStore:
        """Open an existing run (possibly still being written) for reading and appending."""
        root = Path(path)
        return cls(root, _read_manifest(root / _MANIFEST))

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
            labels = _load_npy(self.path / "labels.npy")
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
        images = _load_npy(self.path / "images.npy")
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
        return _entry_indices(self.path / "checkpoints")

    def append_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store one checkpoint (atomically); it must match the run's probe set and layer."""
        self._check_checkpoint(checkpoint)
        path = self._checkpoint_path(checkpoint.index)
        if path.exists():
            raise InputError(f"checkpoint {checkpoint.index} is already stored at {path}")
        arrays: dict[str, np.ndarray] = {"features": checkpoint.features}
        if checkpoint.logits is not None:
            arrays["logits"] = checkpoint.logits
        head_kind = self._write_head(checkpoint, arrays)
        meta = {
            "version": VERSION,
            "index": int(checkpoint.index),
            "epoch": int(checkpoint.epoch),
            "step": None if checkpoint.step is None else int(checkpoint.step),
            "scalars": {k: float(v) for k, v in checkpoint.scalars.items()},
            "head": head_kind,
        }
        arrays["meta"] = _json_array(meta)
        self._fix_manifest_dims(checkpoint)
        _atomic_write(path, lambda f: np.savez(f, **arrays))

    def checkpoint(self, index: int) -> Checkpoint:
        """Load checkpoint ``index``; RunFormatError naming the file if it is missing or damaged."""
        path = self._checkpoint_path(index)
        arrays = _load_npz(path, _CHECKPOINT_KEYS)
        meta = _entry_meta(path, arrays, index)
        features = arrays["features"]
        n_features = self.n_features
        if features.ndim != 2 or features.shape[0] != self.n_points:
            raise RunFormatError(f"{path}: features have shape {features.shape}, expected [N, D]")
        if n_features is not None and features.shape[1] != n_features:
            raise RunFormatError(
                f"{path}: features have D = {features.shape[1]}, run has {n_features}"
            )
        head = self._read_head(path, meta, arrays)
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
                lambda p=path, i=index: _entry_meta(p, _load_npz(p, ("meta",), only=("meta",)), i),
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
        return sorted(p.name for p in root.iterdir() if p.is_dir() and _METHOD.match(p.name))

    def frame_indices(self, method: str) -> list[int]:
        """Checkpoint indices that have a complete frame of ``method``, ascending."""
        return _entry_indices(self._method_dir(method))

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
        arrays["meta"] = _json_array(meta)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, lambda f: np.savez(f, **arrays))

    def frame(self, method: str, index: int) -> Frame:
        """Load one frame; RunFormatError naming the file if it is missing or damaged."""
        path = self._frame_path(method, index)
        arrays = _load_npz(path, _FRAME_KEYS)
        meta = _entry_meta(path, arrays, index)
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
                background=_background_from(path, arrays),
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
            "state": _encode_state(state, "state"),
        }
        path = self._method_dir(method) / _STATE
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, lambda f: torch.save(payload, f))

    def load_projector_state(self, method: str) -> tuple[int, dict[str, Any]] | None:
        """``(index, state)`` saved by :meth:`save_projector_state`, or None if there is none."""
        path = self._method_dir(method) / _STATE
        if not path.exists():
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if payload["version"] != VERSION or payload["method"] != method:
                raise RunFormatError(f"{path}: unexpected version or method in projector state")
            return int(payload["index"]), _decode_state(payload["state"])
        except RunFormatError:
            raise
        except Exception as exc:
            raise RunFormatError(f"{path}: damaged projector state ({exc})") from exc

    # ---------------------------------------------------------------- internals
    def _checkpoint_path(self, index: int) -> Path:
        return self.path / "checkpoints" / f"{int(index):06d}.npz"

    def _method_dir(self, method: str) -> Path:
        if not isinstance(method, str) or not _METHOD.match(method):
            raise InputError(f"invalid method name {method!r}: use letters, digits, '_', '.', '-'")
        return self.path / "frames" / method

    def _frame_path(self, method: str, index: int) -> Path:
        return self._method_dir(method) / f"{int(index):06d}.npz"

    def _refresh_manifest(self) -> None:
        manifest = _read_manifest(self.path / _MANIFEST)
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
        write_json(self.path / _MANIFEST, manifest)
        with self._lock:
            self._manifest = manifest

    def _write_head(self, checkpoint: Checkpoint, arrays: dict[str, np.ndarray]) -> str:
        head = checkpoint.head
        if head is None:
            return "none"
        if isinstance(head, LinearHead):
            arrays["head_W"] = head.weight
            arrays["head_b"] = head.bias
            return "linear"
        if isinstance(head, TorchHead):
            program = _export_head(head, checkpoint.n_features, checkpoint.index)
            _atomic_write(
                self._head_path(checkpoint.index), lambda f: torch.export.save(program, f)
            )
            return "torch"
        raise InputError(
            f"checkpoint {checkpoint.index}: cannot store a head of type {type(head).__name__}; "
            "use LinearHead or TorchHead"
        )

    def _read_head(
        self, path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> Head | None:
        kind = meta.get("head", "none")
        if kind == "none":
            return None
        if kind == "linear":
            if "head_W" not in arrays or "head_b" not in arrays:
                raise RunFormatError(f"{path}: linear head without head_W/head_b arrays")
            try:
                return LinearHead(arrays["head_W"], arrays["head_b"])
            except InputError as exc:
                raise RunFormatError(f"{path}: {exc}") from exc
        if kind == "torch":
            head_path = self._head_path(int(meta["index"]))
            try:
                module = torch.export.load(str(head_path)).module()
            except Exception as exc:
                raise RunFormatError(f"{head_path}: cannot load the torch head ({exc})") from exc
            return TorchHead(module)
        raise RunFormatError(f"{path}: unknown head kind {kind!r}")

    def _head_path(self, index: int) -> Path:
        return self.path / "checkpoints" / f"{int(index):06d}.head.pt2"

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


# -------------------------------------------------------------------- file helpers
def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write via a hidden temp file in the same directory, fsync, rename, fsync the directory."""
    tmp = path.parent / f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` atomically (temp file, fsync, rename)."""
    text = json.dumps(value, indent=2, default=_json_default)
    _atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def read_json(path: Path, what: str) -> Any:
    """The JSON in ``path``; a RunFormatError naming the file (and ``what`` it is) if unreadable."""
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunFormatError(f"{path}: unreadable {what} ({exc})") from exc


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _json_array(value: Any) -> np.ndarray:
    """JSON text as a 0-d unicode array, so npz files load with allow_pickle=False."""
    return np.array(json.dumps(value, default=_json_default))


def _read_manifest(path: Path) -> dict[str, Any]:
    root = path.parent
    if not path.exists():
        what = "does not exist" if not root.exists() else "has no manifest.json"
        raise RunFormatError(f"{root} is not a sentrycam run: it {what}")
    manifest = read_json(path, "manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RunFormatError(f"{path}: not a sentrycam run manifest (format must be {FORMAT!r})")
    version = manifest.get("version")
    if not isinstance(version, int) or version > VERSION or version < 1:
        raise RunFormatError(
            f"{path}: run format version {version!r} is not supported; this sentrycam_widget "
            f"reads version {VERSION} (a newer version needs a newer sentrycam_widget)"
        )
    missing = [k for k in ("n_points", "n_features", "n_classes") if k not in manifest]
    if missing:
        raise RunFormatError(f"{path}: manifest lacks {', '.join(missing)}")
    return manifest


def _entry_indices(directory: Path) -> list[int]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for m in map(_ENTRY.match, names) if m)


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise RunFormatError(f"{path}: damaged or missing file ({exc})") from exc


def _load_npz(
    path: Path, required: tuple[str, ...], only: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = archive.files if only is None else [n for n in only if n in archive.files]
            arrays = {name: archive[name] for name in names}
    except FileNotFoundError as exc:
        raise RunFormatError(f"{path}: no such entry") from exc
    except Exception as exc:
        raise RunFormatError(f"{path}: damaged file ({type(exc).__name__}: {exc})") from exc
    missing = [key for key in required if key not in arrays]
    if missing:
        raise RunFormatError(f"{path}: missing {', '.join(missing)}")
    return arrays


def _entry_meta(path: Path, arrays: dict[str, np.ndarray], index: int) -> dict[str, Any]:
    try:
        meta = json.loads(str(arrays["meta"]))
    except (json.JSONDecodeError, KeyError) as exc:
        raise RunFormatError(f"{path}: bad meta JSON ({exc})") from exc
    if not isinstance(meta, dict) or not all(
        isinstance(meta.get(k), int) for k in ("index", "epoch")
    ):
        raise RunFormatError(f"{path}: meta lacks integer index/epoch")
    step = meta.setdefault("step", None)  # absent in runs written before steps were recorded
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise RunFormatError(f"{path}: meta step must be a non-negative integer, got {step!r}")
    if meta.get("version") != VERSION:
        raise RunFormatError(
            f"{path}: entry format version {meta.get('version')!r}, expected {VERSION}"
        )
    if meta["index"] != int(index):
        raise RunFormatError(f"{path}: holds index {meta['index']}, its name says {index}")
    return meta


def _background_from(path: Path, arrays: dict[str, np.ndarray]) -> Background | None:
    keys = ("bg_classes", "bg_alpha", "bg_extent")
    present = [k for k in keys if k in arrays]
    if not present:
        return None
    if len(present) != len(keys):
        raise RunFormatError(f"{path}: incomplete background ({', '.join(present)} only)")
    extent = arrays["bg_extent"]
    if extent.shape != (4,):
        raise RunFormatError(f"{path}: bg_extent must have 4 values, got {extent.shape}")
    return Background(arrays["bg_classes"], arrays["bg_alpha"], tuple(float(v) for v in extent))


def _labels_array(labels: Any) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    array = np.asarray(labels)
    if array.ndim != 1 or array.shape[0] < 2 or array.dtype.kind not in "iu":
        raise InputError(f"labels must be integer [N] with N >= 2, got {array.dtype} {array.shape}")
    if array.min() < 0:
        raise InputError("labels must be non-negative class indices")
    return np.ascontiguousarray(array, dtype=np.int64)


def _class_count(labels: np.ndarray, n_classes: int | None, class_names: list[str] | None) -> int:
    count = int(labels.max()) + 1
    if class_names is not None:
        count = max(count, len(class_names))
    if n_classes is not None:
        if int(n_classes) < count:
            raise InputError(f"n_classes = {n_classes} but the labels/class names need {count}")
        count = int(n_classes)
    return count


def _images_array(images: Any, n: int) -> np.ndarray:
    array = np.asarray(images)
    if array.dtype != np.uint8 or array.shape[:1] != (n,) or array.ndim not in (3, 4):
        raise InputError(
            f"images must be uint8 [N, h, w] or [N, h, w, 3] with N = {n}, got {array.dtype} {array.shape}"
        )
    if array.ndim == 4 and array.shape[-1] != 3:
        raise InputError(f"colour images must have 3 channels last, got shape {array.shape}")
    return np.ascontiguousarray(array)


def _export_head(head: TorchHead, n_features: int, index: int) -> Any:
    """A self-contained torch.export program of the head (no pickled classes), batch dim dynamic."""
    module = head.module.cpu().eval()
    example = torch.zeros(3, n_features)
    try:
        return torch.export.export(
            module, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},)
        )
    except Exception as exc:
        raise InputError(
            f"checkpoint {index}: the torch head cannot be exported with torch.export to be "
            f"stored ({type(exc).__name__}: {exc})"
        ) from exc


def _library_version() -> str:
    from . import __version__

    return f"sentrycam_widget {__version__}"


# -------------------------------------------------------------------- projector state codec
_NDARRAY = "__ndarray__"


def _encode_state(value: Any, where: str) -> Any:
    """Make a state loadable with ``torch.load(weights_only=True)``: numpy arrays become tensors."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise InputError(f"projector state {where}: cannot store numpy dtype {value.dtype}")
        return {_NDARRAY: torch.from_numpy(np.ascontiguousarray(value).copy())}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, Mapping):
        encoded = OrderedDict() if isinstance(value, OrderedDict) else {}
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise InputError(f"projector state {where}: keys must be str or int, got {key!r}")
            encoded[key] = _encode_state(item, f"{where}[{key!r}]")
        if hasattr(value, "_metadata"):
            encoded._metadata = value._metadata  # type: ignore[union-attr]
        return encoded
    if isinstance(value, (list, tuple)):
        items = [_encode_state(item, f"{where}[{i}]") for i, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise InputError(f"projector state {where}: cannot store a {type(value).__name__}")


def _decode_state(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_NDARRAY}:
            return value[_NDARRAY].numpy()
        decoded = OrderedDict() if isinstance(value, OrderedDict) else {}
        for key, item in value.items():
            decoded[key] = _decode_state(item)
        if hasattr(value, "_metadata"):
            decoded._metadata = value._metadata  # type: ignore[union-attr]
        return decoded
    if isinstance(value, list):
        return [_decode_state(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_decode_state(item) for item in value)
    return value
