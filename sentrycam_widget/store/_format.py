"""The run directory's on-disk format: names, versions, the manifest and reading npz entries.

See ``docs/run-format.md`` for the layout; :class:`~sentrycam_widget.store.RunStore` is the one
reader and writer that uses these helpers.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from .._jsonio import json_default, parse_json
from ..checks import as_labels
from ..errors import InputError, RunFormatError
from ..records import Background

if TYPE_CHECKING:
    from ..filesystem import RunDir

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


def read_manifest(files: RunDir) -> dict[str, Any]:
    """The run's manifest, checked; RunFormatError naming the run if it is not one."""
    where = files.describe(MANIFEST)
    try:
        data = files.read_bytes(MANIFEST)
    except FileNotFoundError:
        what = "has no manifest.json" if files.exists("") else "does not exist"
        raise RunFormatError(f"{files.location} is not a sentrycam run: it {what}") from None
    except OSError as exc:
        raise RunFormatError(f"{where}: unreadable manifest ({exc})") from exc
    manifest = parse_json(data, where, "manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RunFormatError(f"{where}: not a sentrycam run manifest (format must be {FORMAT!r})")
    version = manifest.get("version")
    if not isinstance(version, int) or version > VERSION or version < 1:
        raise RunFormatError(
            f"{where}: run format version {version!r} is not supported; this sentrycam_widget "
            f"reads version {VERSION} (a newer version needs a newer sentrycam_widget)"
        )
    missing = [k for k in ("n_points", "n_features", "n_classes") if k not in manifest]
    if missing:
        raise RunFormatError(f"{where}: manifest lacks {', '.join(missing)}")
    for key in ("n_points", "n_features", "n_classes"):
        value = manifest[key]
        wrong = isinstance(value, bool) or not isinstance(value, int) or value < 1
        if wrong and not (key == "n_features" and value is None):
            raise RunFormatError(
                f"{where}: manifest {key} must be a positive integer, got {value!r}"
            )
    return manifest


def entry_indices(files: RunDir, directory: str) -> list[int]:
    """Indices of the complete entries (``<digits>.npz``) directly under ``directory``."""
    return sorted(int(m.group(1)) for m in map(ENTRY.match, files.list(directory)) if m)


def load_npy(files: RunDir, key: str) -> np.ndarray:
    try:
        return np.load(files.open(key), allow_pickle=False)
    except Exception as exc:
        raise RunFormatError(f"{files.describe(key)}: damaged or missing file ({exc})") from exc


def load_npz(
    files: RunDir, key: str, required: tuple[str, ...], only: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    where = files.describe(key)
    try:
        with np.load(files.open(key), allow_pickle=False) as archive:
            names = archive.files if only is None else [n for n in only if n in archive.files]
            arrays = {name: archive[name] for name in names}
    except FileNotFoundError as exc:
        raise RunFormatError(f"{where}: no such entry") from exc
    except Exception as exc:
        raise RunFormatError(f"{where}: damaged file ({type(exc).__name__}: {exc})") from exc
    missing = [key for key in required if key not in arrays]
    if missing:
        raise RunFormatError(f"{where}: missing {', '.join(missing)}")
    return arrays


def entry_meta(path: object, arrays: dict[str, np.ndarray], index: int) -> dict[str, Any]:
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


def background_from(path: object, arrays: dict[str, np.ndarray]) -> Background | None:
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
    """The run's probe labels: integer class indices [N] with N >= 2."""
    array = as_labels(labels)
    if array.shape[0] < 2:
        raise InputError(f"labels must be integer [N] with N >= 2, got shape {array.shape}")
    return array


def class_count(labels: np.ndarray, n_classes: int | None, class_names: list[str] | None) -> int:
    count = int(labels.max()) + 1
    if class_names is not None:
        count = max(count, len(class_names))
    if n_classes is not None:
        if int(n_classes) < count:
            raise InputError(f"n_classes = {n_classes} but the labels/class names need {count}")
        count = int(n_classes)
    return count


def library_version() -> str:
    from .. import __version__

    return f"sentrycam_widget {__version__}"
