"""Bring-your-own arrays: checking an import (an .npz file or a dict of arrays) and recording it.

Keys: ``features`` [T, N, D] (required), ``labels`` [N] (required) and optionally ``logits``
[T, N, C], ``head_W`` [T, C, D] with ``head_b`` [T, C] (``logits = features @ W.T + b``),
``val_loss`` [T] and ``epochs`` [T] (strictly increasing integers; default ``0..T-1``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .capture import checkpoint_from_arrays
from .checks import (
    as_labels,
    check_feature_values,
    check_label_range,
    check_point_count,
    constant_features,
)
from .errors import InputError
from .filesystem import LocalDir, RunDir
from .filesystem import run_dir as filesystem_run_dir
from .store import RunStore
from .store._format import MANIFEST

REQUIRED_KEYS = ("features", "labels")
OPTIONAL_KEYS = ("logits", "head_W", "head_b", "val_loss", "epochs")

ImportSource = str | os.PathLike[str] | dict[str, Any]


def import_arrays(source: ImportSource, run_dir: str | os.PathLike[str]) -> RunStore:
    """Create a run directory from bring-your-own arrays, one checkpoint per entry of T.

    Parameters
    ----------
    source
        An ``.npz`` path or a dict of arrays with the keys listed in this module's docstring.
    run_dir
        Where to create the run; nothing is written unless every array passes the checks.

    Returns
    -------
    RunStore
        The new run, holding T checkpoints. With a head and no logits,
        ``logits = features @ head_W.T + head_b``.
    """
    arrays = load_import_arrays(source)
    files = run_dir if isinstance(run_dir, RunDir) else filesystem_run_dir(run_dir)
    if isinstance(files, LocalDir) and files.root.exists() and not files.root.is_dir():
        raise InputError(f"{files.root} is a file, not a directory to create the run in")
    existed, empty = files.exists(""), files.is_empty()
    try:
        return _record(arrays, files)
    except BaseException:
        if empty:  # only what this import wrote, so a retry of the same command works
            _remove_partial_run(files, existed)
        raise


def _record(arrays: dict[str, np.ndarray], files: RunDir) -> RunStore:
    features, epochs = arrays["features"], arrays["epochs"]
    store: RunStore | None = None
    for t in range(features.shape[0]):
        checkpoint = checkpoint_from_arrays(
            t,
            int(epochs[t]),
            features[t],
            arrays["labels"],
            logits=_row(arrays, "logits", t),
            head_W=_row(arrays, "head_W", t),
            head_b=_row(arrays, "head_b", t),
            scalars={} if "val_loss" not in arrays else {"val_loss": float(arrays["val_loss"][t])},
        )
        if store is None:
            store = RunStore.create(files, checkpoint.labels, n_features=checkpoint.n_features)
        store.append_checkpoint(checkpoint)
    assert store is not None
    return store


def _remove_partial_run(files: RunDir, existed: bool) -> None:
    """Undo a failed import into a place that was empty: the manifest first (no longer a
    run), then everything else written."""
    files.remove(MANIFEST)
    if isinstance(files, LocalDir):
        if not existed:
            shutil.rmtree(files.root, ignore_errors=True)
            return
        for child in files.root.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        return
    for key in files.list("checkpoints"):
        files.remove(f"checkpoints/{key}")
    for key in ("labels.npy", "images.npy"):
        files.remove(key)


def load_import_arrays(source: ImportSource) -> dict[str, np.ndarray]:
    """Read and check the arrays of an import; every problem names the key (or the file) at fault.

    Parameters
    ----------
    source
        An ``.npz`` path or a dict of arrays.

    Returns
    -------
    dict of str to numpy.ndarray
        The checked arrays: float32 ``features``/``logits``/``head_W``/``head_b``/``val_loss``,
        int64 ``labels`` and ``epochs`` (filled in as ``0..T-1`` when absent).
    """
    arrays, what = _read_source(source)
    unknown = sorted(set(arrays) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise InputError(
            f"{what}: unknown key(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}"
        )
    for key in REQUIRED_KEYS:
        if key not in arrays:
            raise InputError(f"{what}: missing required key {key!r}")
    features = _float_key(arrays, "features", ndim=3)
    t, n, d = features.shape
    if t < 1 or n < 2 or d < 1:
        raise InputError(
            f"key 'features' must be [T,N,D] with T>=1, N>=2, D>=1, got {features.shape}"
        )
    labels = as_labels(arrays["labels"], "key 'labels'", n=n, min_classes=2)
    check_point_count(n, what)
    check_label_range(labels, f"{what}: key 'labels'")
    check_feature_values(features, f"{what}: key 'features'")
    constant = [i for i in range(t) if constant_features(features[i])]
    if constant:
        raise InputError(
            f"{what}: key 'features' is the same for every probe point at checkpoint(s) "
            f"{constant}; such a checkpoint has no layout to project and would score as perfect"
        )
    checked = {"features": features, "labels": labels}
    if "logits" in arrays:
        checked["logits"] = _float_key(arrays, "logits", ndim=3, leading=(t, n))
        if checked["logits"].shape[2] <= int(labels.max()):
            raise InputError(
                f"{what}: key 'logits' has {checked['logits'].shape[2]} classes but 'labels' "
                f"go up to {int(labels.max())}"
            )
    checked.update(_head_keys(arrays, t, d, checked.get("logits")))
    if "val_loss" in arrays:
        checked["val_loss"] = _float_key(arrays, "val_loss", ndim=1, leading=(t,))
    checked["epochs"] = _epochs_key(arrays, t)
    return checked


def _read_source(source: ImportSource) -> tuple[dict[str, np.ndarray], str]:
    if isinstance(source, dict):
        return {key: np.asarray(value) for key, value in source.items()}, "import arrays"
    path = Path(source)
    if not path.is_file():
        raise InputError(f"import file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}, str(path)
    except Exception as exc:  # empty (EOFError), truncated (BadZipFile), pickled, unreadable
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise InputError(f"{path} is not a readable .npz file of plain arrays ({reason})") from exc


def _row(arrays: dict[str, np.ndarray], key: str, t: int) -> np.ndarray | None:
    return arrays[key][t] if key in arrays else None


def _float_key(
    arrays: dict[str, np.ndarray], key: str, ndim: int, leading: tuple[int, ...] = ()
) -> np.ndarray:
    value = arrays[key]
    if value.dtype.kind not in "fiu" or value.ndim != ndim:
        raise InputError(
            f"key {key!r} must be a {ndim}-d numeric array, got {value.dtype} with shape {value.shape}"
        )
    if value.shape[: len(leading)] != leading:
        raise InputError(
            f"key {key!r} has shape {value.shape}; its leading dimensions must be {leading}"
        )
    value = value.astype(np.float32)
    finite = np.isfinite(value)
    if not finite.all():
        bad = int((~finite).sum())
        where = (
            f" at checkpoint(s) {np.unique(np.nonzero(~finite)[0]).tolist()}" if ndim == 3 else ""
        )
        raise InputError(f"key {key!r} contains {bad} NaN/inf value(s){where}")
    return value


def _head_keys(
    arrays: dict[str, np.ndarray], t: int, d: int, logits: np.ndarray | None
) -> dict[str, np.ndarray]:
    if "head_b" in arrays and "head_W" not in arrays:
        raise InputError("key 'head_b' was given without 'head_W'")
    if "head_W" not in arrays:
        return {}
    weight = _float_key(arrays, "head_W", ndim=3, leading=(t,))
    if weight.shape[2] != d:
        raise InputError(f"key 'head_W' must be [T,C,D] with D = {d}, got shape {weight.shape}")
    c = weight.shape[1]
    if logits is not None and logits.shape[2] != c:
        raise InputError(f"key 'head_W' has C = {c} classes but 'logits' has {logits.shape[2]}")
    out = {"head_W": weight}
    if "head_b" in arrays:
        out["head_b"] = _float_key(arrays, "head_b", ndim=2, leading=(t, c))
    return out


def _epochs_key(arrays: dict[str, np.ndarray], t: int) -> np.ndarray:
    if "epochs" not in arrays:
        return np.arange(t, dtype=np.int64)
    epochs = arrays["epochs"]
    if epochs.dtype.kind not in "iu" or epochs.shape != (t,):
        raise InputError(
            f"key 'epochs' must be integer [T] = [{t}], got {epochs.dtype} with shape {epochs.shape}"
        )
    if t > 1 and not (np.diff(epochs) > 0).all():
        raise InputError("key 'epochs' must be strictly increasing")
    return epochs.astype(np.int64)
