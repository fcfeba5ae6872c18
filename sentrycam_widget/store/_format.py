"""The run directory's on-disk format: names, versions, the manifest and reading npz entries.

See ``docs/run-format.md`` for the layout; :class:`~sentrycam_widget.store.RunStore` is the one
reader and writer that uses these helpers.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._jsonio import json_default, read_json
from ..errors import InputError, RunFormatError
from ..records import Background

FORMAT = "sentrycam-run"
VERSION = 1

ENTRY = re.compile(r"^(\d{6,})\.npz$")
METHOD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MANIFEST = "manifest.json"
STATE = "state.pt"
CHECKPOINT_KEYS = ("features", "meta")
FRAME_KEYS = ("embedding", "meta")


def json_array(value: Any) -> np.ndarray:
    """JSON text as a 0-d unicode array, so npz files load with allow_pickle=False."""
    return np.array(json.dumps(value, default=json_default))


def read_manifest(path: Path) -> dict[str, Any]:
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


def entry_indices(directory: Path) -> list[int]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for m in map(ENTRY.match, names) if m)


def load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise RunFormatError(f"{path}: damaged or missing file ({exc})") from exc


def load_npz(
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


def entry_meta(path: Path, arrays: dict[str, np.ndarray], index: int) -> dict[str, Any]:
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


def background_from(path: Path, arrays: dict[str, np.ndarray]) -> Background | None:
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


def labels_array(labels: Any) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    array = np.asarray(labels)
    if array.ndim != 1 or array.shape[0] < 2 or array.dtype.kind not in "iu":
        raise InputError(f"labels must be integer [N] with N >= 2, got {array.dtype} {array.shape}")
    if array.min() < 0:
        raise InputError("labels must be non-negative class indices")
    return np.ascontiguousarray(array, dtype=np.int64)


def class_count(labels: np.ndarray, n_classes: int | None, class_names: list[str] | None) -> int:
    count = int(labels.max()) + 1
    if class_names is not None:
        count = max(count, len(class_names))
    if n_classes is not None:
        if int(n_classes) < count:
            raise InputError(f"n_classes = {n_classes} but the labels/class names need {count}")
        count = int(n_classes)
    return count


def images_array(images: Any, n: int) -> np.ndarray:
    array = np.asarray(images)
    if array.dtype != np.uint8 or array.shape[:1] != (n,) or array.ndim not in (3, 4):
        raise InputError(
            f"images must be uint8 [N, h, w] or [N, h, w, 3] with N = {n}, got {array.dtype} {array.shape}"
        )
    if array.ndim == 4 and array.shape[-1] != 3:
        raise InputError(f"colour images must have 3 channels last, got shape {array.shape}")
    return np.ascontiguousarray(array)


def library_version() -> str:
    from .. import __version__

    return f"sentrycam_widget {__version__}"
