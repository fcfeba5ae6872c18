"""What a Monitor is given, checked and prepared: methods, thumbnails, the default run directory."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .probe import ProbeSet, images_from_inputs
from .projection.base import require_method

_MAX_THUMBNAIL_BYTES = 16 * 1024 * 1024


def check_methods(methods: Iterable[str]) -> list[str]:
    """The chosen projection methods, deduplicated in order (none: a record-only monitor)."""
    if isinstance(methods, str):
        methods = [methods]
    chosen = list(dict.fromkeys(methods))
    for method in chosen:
        require_method(method)
    return chosen


def method_options_for(
    methods: Iterable[str],
    method_options: dict[str, dict[str, Any]] | None,
    device: Any = None,
) -> dict[str, dict[str, Any]]:
    """Each method's projector options (a copy), with ``device`` where a method sets none."""
    options = {m: dict((method_options or {}).get(m, {})) for m in methods}
    if device is not None:
        for opts in options.values():
            opts.setdefault("device", device)
    return options


def thumbnails(probe: ProbeSet) -> np.ndarray | None:
    """Hover thumbnails: the probe's images, or small image-like inputs scaled to uint8."""
    if probe.images is not None:
        return probe.images
    shape = tuple(probe.inputs.shape)
    image_like = len(shape) == 3 or (len(shape) == 4 and 1 in (shape[1], shape[-1]))
    if not image_like or probe.inputs.numel() > _MAX_THUMBNAIL_BYTES:
        return None
    try:
        return images_from_inputs(probe.inputs)
    except InputError:
        return None


def default_run_dir() -> Path:
    """``runs/<date-time>-<pid>-<nonce>``: unique per process and call."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{os.getpid()}-{time.monotonic_ns() % 10_000:04d}"
