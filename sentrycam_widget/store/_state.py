"""Projector states: one file per checkpoint index, saved with torch.save, loaded ``weights_only``."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import InputError, RunFormatError
from ._format import STATE, VERSION

if TYPE_CHECKING:
    from ..filesystem import RunDir

_NDARRAY = "__ndarray__"


def encode_state(value: Any, where: str) -> Any:
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
            encoded[key] = encode_state(item, f"{where}[{key!r}]")
        if hasattr(value, "_metadata"):
            encoded._metadata = value._metadata  # type: ignore[union-attr]
        return encoded
    if isinstance(value, (list, tuple)):
        items = [encode_state(item, f"{where}[{i}]") for i, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise InputError(f"projector state {where}: cannot store a {type(value).__name__}")


def decode_state(value: Any) -> Any:
    """Undo :func:`encode_state`: tensors marked as numpy arrays become arrays again."""
    if isinstance(value, dict):
        if set(value) == {_NDARRAY}:
            return value[_NDARRAY].numpy()
        decoded = OrderedDict() if isinstance(value, OrderedDict) else {}
        for key, item in value.items():
            decoded[key] = decode_state(item)
        if hasattr(value, "_metadata"):
            decoded._metadata = value._metadata  # type: ignore[union-attr]
        return decoded
    if isinstance(value, list):
        return [decode_state(item) for item in value]
    if isinstance(value, tuple):
        return tuple(decode_state(item) for item in value)
    return value


_STATE_FILE = re.compile(r"^(\d{6,})\.state\.pt$")


def state_key(method_dir: str, index: int) -> str:
    """The key of the projector state after checkpoint ``index`` (``.../000005.state.pt``)."""
    return f"{method_dir}/{int(index):06d}.state.pt"


def state_indices(files: RunDir, method_dir: str) -> list[int]:
    """Indices that have a saved projector state under ``method_dir``, ascending."""
    return sorted(int(m.group(1)) for m in map(_STATE_FILE.match, files.list(method_dir)) if m)


def write_state(
    files: RunDir, method_dir: str, method: str, index: int, state: Mapping[str, Any]
) -> None:
    """Save ``state`` as the projector state of ``method`` after checkpoint ``index``."""
    payload = {
        "version": VERSION,
        "method": method,
        "index": int(index),
        "state": encode_state(state, "state"),
    }
    files.write(state_key(method_dir, index), lambda f: torch.save(payload, f))


def read_state(
    files: RunDir, method_dir: str, method: str, index: int | None
) -> tuple[int, dict[str, Any]] | None:
    """The state saved after checkpoint ``index`` (None: the newest), or None if there is none.

    Runs written before per-index states have one ``state.pt``; it is used when its index fits.
    """
    saved = state_indices(files, method_dir)
    if index is None and saved:
        index = saved[-1]
    key = state_key(method_dir, index) if index in saved else f"{method_dir}/{STATE}"
    where = files.describe(key)
    try:
        payload = torch.load(files.open(key), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except Exception as exc:
        raise RunFormatError(f"{where}: damaged projector state ({exc})") from exc
    try:
        if payload["version"] != VERSION or payload["method"] != method:
            raise RunFormatError(f"{where}: unexpected version or method in projector state")
        found = int(payload["index"])
        if index is not None and found != index:
            return None
        return found, decode_state(payload["state"])
    except RunFormatError:
        raise
    except Exception as exc:
        raise RunFormatError(f"{where}: damaged projector state ({exc})") from exc


def prune_states(files: RunDir, method_dir: str, keep: int) -> None:
    """Remove the states saved before checkpoint ``keep`` and an older run's ``state.pt``."""
    for index in state_indices(files, method_dir):
        if index < keep:
            files.remove(state_key(method_dir, index))
    files.remove(f"{method_dir}/{STATE}")
