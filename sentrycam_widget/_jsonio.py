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
