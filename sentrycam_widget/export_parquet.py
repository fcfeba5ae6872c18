"""Parquet export: a method's frames as one long table, one row per (checkpoint, probe point).

Columns, in order: ``checkpoint``, ``epoch``, ``step`` (when the run records steps),
``point``, ``x``, ``y``, ``label``, ``prediction`` (the model's argmax, when checkpoints carry
logits or a head), ``recon_pred`` (the head's prediction on the decoded point, for methods
with an inverse). pandas, polars, DuckDB and Embedding Atlas read it as is. One row group per
checkpoint, written as the checkpoints are read, so memory stays at one checkpoint. Needs
``pyarrow`` (the ``export`` extra).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError
from .export import exported_indices, write_atomically

if TYPE_CHECKING:
    from .store import RunStore


def export_parquet(store: RunStore, method: str, path: str | Path) -> Path:
    """Write ``method``'s frames of ``store`` as a Parquet table at ``path`` (atomically).

    Parameters
    ----------
    store
        The run to export.
    method
        The projection method whose frames are exported.
    path
        The ``.parquet`` file to write.

    Returns
    -------
    Path
        The written file; the file's key-value metadata ``sentrycam`` holds the method, the
        run and its class names as JSON.
    """
    pa, pq = _pyarrow()
    indices = exported_indices(store, method)
    infos = {info["index"]: info for info in store.checkpoint_info()}
    frames = [store.frame(method, i) for i in indices]
    first = store.checkpoint(indices[0])
    has_step = any(infos.get(i, {}).get("step") is not None for i in indices)
    has_prediction = first.predictions is not None
    has_recon = any(f.recon_pred is not None for f in frames)
    fields = [("checkpoint", pa.int64()), ("epoch", pa.int64())]
    fields += [("step", pa.int64())] if has_step else []
    fields += [("point", pa.int64()), ("x", pa.float32()), ("y", pa.float32())]
    fields += [("label", pa.int64())]
    fields += [("prediction", pa.int64())] if has_prediction else []
    fields += [("recon_pred", pa.int64())] if has_recon else []
    about = {"method": method, "run": str(store.path), "class_names": store.class_names}
    schema = pa.schema(fields, metadata={"sentrycam": json.dumps(about)})
    n = store.n_points
    points = np.arange(n, dtype=np.int64)
    labels = store.labels

    def write(handle: Any) -> None:
        with pq.ParquetWriter(handle, schema) as writer:
            for frame in frames:
                checkpoint = first if frame.index == first.index else store.checkpoint(frame.index)
                step = infos.get(frame.index, {}).get("step")
                columns = {
                    "checkpoint": np.full(n, frame.index, dtype=np.int64),
                    "epoch": np.full(n, frame.epoch, dtype=np.int64),
                    "step": _constant_or_null(pa, step, n),
                    "point": points,
                    "x": frame.embedding[:, 0],
                    "y": frame.embedding[:, 1],
                    "label": labels,
                    "prediction": _array_or_null(pa, checkpoint.predictions, n),
                    "recon_pred": _array_or_null(pa, frame.recon_pred, n),
                }
                arrays = [columns[name] for name in schema.names]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))

    return write_atomically(Path(path), write)


def _constant_or_null(pa: Any, value: int | None, n: int) -> Any:
    if value is None:
        return pa.nulls(n, pa.int64())
    return np.full(n, int(value), dtype=np.int64)


def _array_or_null(pa: Any, values: np.ndarray | None, n: int) -> Any:
    if values is None:
        return pa.nulls(n, pa.int64())
    return np.asarray(values, dtype=np.int64)


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise InputError(
            "the Parquet export needs pyarrow: pip install 'sentrycam-widget[export]'"
        ) from exc
    return pyarrow, pyarrow.parquet
