"""The projector-state codec: states saved with torch.save and loaded with ``weights_only=True``."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..errors import InputError

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
