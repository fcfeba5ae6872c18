"""Head serialisation: a linear head as arrays in the entry, a torch head as a torch.export program."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._atomic_io import atomic_write
from ..errors import InputError, RunFormatError
from ..records import Checkpoint, Head, LinearHead, TorchHead


def write_head(run: Path, checkpoint: Checkpoint, arrays: dict[str, np.ndarray]) -> str:
    """Put a linear head into ``arrays`` or export a torch head beside the entry; its kind."""
    head = checkpoint.head
    if head is None:
        return "none"
    if isinstance(head, LinearHead):
        arrays["head_W"] = head.weight
        arrays["head_b"] = head.bias
        return "linear"
    if isinstance(head, TorchHead):
        program = export_head(head, checkpoint.n_features, checkpoint.index)
        atomic_write(head_path(run, checkpoint.index), lambda f: torch.export.save(program, f))
        return "torch"
    raise InputError(
        f"checkpoint {checkpoint.index}: cannot store a head of type {type(head).__name__}; "
        "use LinearHead or TorchHead"
    )


def read_head(
    run: Path, path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]
) -> Head | None:
    """The head stored with the checkpoint entry at ``path`` (None when it has none)."""
    kind = meta.get("head", "none")
    if kind == "none":
        return None
    if kind == "linear":
        if "head_W" not in arrays or "head_b" not in arrays:
            raise RunFormatError(f"{path}: linear head without head_W/head_b arrays")
        try:
            return LinearHead(arrays["head_W"], arrays["head_b"])
        except InputError as exc:
            raise RunFormatError(f"{path}: {exc}") from exc
    if kind == "torch":
        program = head_path(run, int(meta["index"]))
        try:
            module = torch.export.load(str(program)).module()
        except Exception as exc:
            raise RunFormatError(f"{program}: cannot load the torch head ({exc})") from exc
        return TorchHead(module)
    raise RunFormatError(f"{path}: unknown head kind {kind!r}")


def head_path(run: Path, index: int) -> Path:
    """Where checkpoint ``index``'s exported torch head lives."""
    return run / "checkpoints" / f"{int(index):06d}.head.pt2"


def export_head(head: TorchHead, n_features: int, index: int) -> Any:
    """A self-contained torch.export program of the head (no pickled classes), batch dim dynamic."""
    module = head.module.cpu().eval()
    example = torch.zeros(3, n_features)
    try:
        return torch.export.export(
            module, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},)
        )
    except Exception as exc:
        raise InputError(
            f"checkpoint {index}: the torch head cannot be exported with torch.export to be "
            f"stored ({type(exc).__name__}: {exc})"
        ) from exc
