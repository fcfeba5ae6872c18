"""JSON files and values: atomic JSON writes, reads that name the damaged file, numpy-aware encoding."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic_io import atomic_write
from .errors import RunFormatError


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` atomically (temp file, fsync, rename)."""
    data = json_bytes(value)
    atomic_write(path, lambda f: f.write(data))


def json_bytes(value: Any) -> bytes:
    """``value`` as indented UTF-8 JSON (numpy values and paths converted)."""
    return json.dumps(value, indent=2, default=json_default).encode("utf-8")


def read_json(path: Path, what: str) -> Any:
    """The JSON in ``path``; a RunFormatError naming the file (and ``what`` it is) if unreadable."""
    try:
        return parse_json(path.read_bytes(), path, what)
    except OSError as exc:
        raise RunFormatError(f"{path}: unreadable {what} ({exc})") from exc


def parse_json(data: bytes, where: object, what: str) -> Any:
    """JSON from bytes read at ``where``; a RunFormatError naming it if they are not JSON."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunFormatError(f"{where}: unreadable {what} ({exc})") from exc


def json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def jsonable(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python values, NaN/inf to null (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value
