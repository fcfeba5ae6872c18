"""Head serialisation: a linear head as arrays in the entry, a torch head as a torch.export program."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._atomic_io import writer_token
from ..errors import InputError, RunFormatError
from ..records import Checkpoint, Head, LinearHead, TorchHead

if TYPE_CHECKING:
    from ..filesystem import RunDir


def write_head(
    files: RunDir, checkpoint: Checkpoint, arrays: dict[str, np.ndarray]
) -> tuple[str, str | None]:
    """Put a linear head into ``arrays`` or export a torch head beside the entry.

    Returns the head's kind and, for a torch head, the key written: its name carries this
    writer's token, so two writers racing for one index never overwrite each other's head (the
    entry that wins names its own in ``meta.head_file``; the loser removes its file).
    """
    head = checkpoint.head
    if head is None:
        return "none", None
    if isinstance(head, LinearHead):
        arrays["head_W"] = head.weight
        arrays["head_b"] = head.bias
        return "linear", None
    if isinstance(head, TorchHead):
        program = export_head(head, checkpoint.n_features, checkpoint.index)
        key = f"checkpoints/{int(checkpoint.index):06d}.{writer_token()}.head.pt2"
        files.write(key, lambda f: torch.export.save(program, f))
        return "torch", key
    raise InputError(
        f"checkpoint {checkpoint.index}: cannot store a head of type {type(head).__name__}; "
        "use LinearHead or TorchHead"
    )


def read_head(
    files: RunDir, path: object, meta: dict[str, Any], arrays: dict[str, np.ndarray]
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
        name = meta.get("head_file")
        key = head_key(int(meta["index"])) if name is None else f"checkpoints/{name}"
        try:
            module = torch.export.load(files.open(key)).module()
        except Exception as exc:
            where = files.describe(key)
            raise RunFormatError(f"{where}: cannot load the torch head ({exc})") from exc
        return TorchHead(module)
    raise RunFormatError(f"{path}: unknown head kind {kind!r}")


def head_key(index: int) -> str:
    """Where checkpoint ``index``'s torch head lives in runs whose entries lack ``head_file``."""
    return f"checkpoints/{int(index):06d}.head.pt2"


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
