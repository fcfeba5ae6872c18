"""JSON files and values: atomic JSON writes, reads that name the damaged file, numpy-aware encoding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic_io import atomic_write
from .errors import RunFormatError


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` atomically (temp file, fsync, rename)."""
    text = json.dumps(value, indent=2, default=json_default)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def read_json(path: Path, what: str) -> Any:
    """The JSON in ``path``; a RunFormatError naming the file (and ``what`` it is) if unreadable."""
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunFormatError(f"{path}: unreadable {what} ({exc})") from exc


def json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def jsonable(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python numbers, NaN/inf to null (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    return value
