"""TensorBoard export: a method's frames in the Embedding Projector's format, one per checkpoint.

``LOGDIR/projector_config.pbtxt`` lists one embedding per checkpoint, named
``<method>/<index> epoch <epoch>``; each points at ``<method>/<index>.tsv`` (the N × 2
positions) and ``<method>/<index>.metadata.tsv`` (point, label, class name, prediction and
recon_pred where present), and, when the run has thumbnails, at ``sprite.png``. Exporting
another method into the same LOGDIR keeps the first method's embeddings. The config is written
last, so TensorBoard never reads one that names a missing file. Needs ``tensorboard`` (the
``export`` extra); ``tensorboard --logdir LOGDIR`` then shows it under "Projector".
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError
from .export import exported_indices, write_atomically

if TYPE_CHECKING:
    from .records import Checkpoint, Frame
    from .store import RunStore

CONFIG = "projector_config.pbtxt"
SPRITE = "sprite.png"
_MAX_SPRITE_SIDE = 8192  # the Embedding Projector's largest sprite image, in pixels


def export_tensorboard(store: RunStore, method: str, logdir: str | Path) -> Path:
    """Write ``method``'s frames of ``store`` for TensorBoard's Embedding Projector.

    Parameters
    ----------
    store
        The run to export.
    method
        The projection method whose frames are exported.
    logdir
        The TensorBoard log directory (created if missing).

    Returns
    -------
    Path
        The projector config file written in ``logdir``.
    """
    config_class, text_format = _projector_proto()
    root = Path(logdir)
    indices = exported_indices(store, method)
    config = _existing_config(root / CONFIG, config_class, text_format)
    kept = [e for e in config.embeddings if not e.tensor_name.startswith(f"{method}/")]
    del config.embeddings[:]
    config.embeddings.extend(kept)
    sprite = _write_sprite(root, store.images)
    names = _class_names(store)
    for index in indices:
        frame, checkpoint = store.frame(method, index), store.checkpoint(index)
        tensor = f"{method}/{index:06d}.tsv"
        metadata = f"{method}/{index:06d}.metadata.tsv"
        write_atomically(root / tensor, lambda f, e=frame.embedding: _write_tsv(f, e))
        table = _metadata_table(frame, checkpoint, names)
        write_atomically(root / metadata, lambda f, t=table: f.write(t.encode("utf-8")))
        embedding = config.embeddings.add()
        embedding.tensor_name = f"{method}/{index:06d} epoch {frame.epoch}"
        embedding.tensor_path = tensor
        embedding.tensor_shape.extend([store.n_points, 2])
        embedding.metadata_path = metadata
        if sprite is not None:
            embedding.sprite.image_path = SPRITE
            embedding.sprite.single_image_dim.extend(sprite)
    text = text_format.MessageToString(config)
    return write_atomically(root / CONFIG, lambda f: f.write(text.encode("utf-8")))


def _write_tsv(handle: Any, embedding: np.ndarray) -> None:
    np.savetxt(handle, embedding, fmt="%.9g", delimiter="\t")  # 9 digits: float32 round-trips


def _metadata_table(frame: Frame, checkpoint: Checkpoint, names: list[str] | None) -> str:
    """TSV with a header row (the projector's multi-column metadata form)."""
    labels = checkpoint.labels
    columns: dict[str, list[str]] = {
        "point": [str(i) for i in range(labels.shape[0])],
        "label": [str(int(v)) for v in labels],
    }
    if names is not None:
        columns["class"] = [names[int(v)] if int(v) < len(names) else str(v) for v in labels]
    if checkpoint.predictions is not None:
        columns["prediction"] = [str(int(v)) for v in checkpoint.predictions]
    if frame.recon_pred is not None:
        columns["recon_pred"] = [str(int(v)) for v in frame.recon_pred]
    rows = ["\t".join(columns)]
    rows += ["\t".join(row) for row in zip(*columns.values(), strict=True)]
    return "\n".join(rows) + "\n"


def _class_names(store: RunStore) -> list[str] | None:
    names = store.class_names
    if names is None:
        return None
    return [" ".join(str(name).split()) for name in names]  # no tabs or newlines in a TSV cell


def _write_sprite(root: Path, images: np.ndarray | None) -> tuple[int, int] | None:
    """The thumbnails as one row-major grid PNG; returns (width, height) of one image."""
    if images is None:
        return None
    from PIL import Image

    n, height, width = images.shape[:3]
    per_row = math.ceil(math.sqrt(n))
    scale = min(1.0, _MAX_SPRITE_SIDE / (per_row * max(height, width)))
    cell_w, cell_h = max(1, int(width * scale)), max(1, int(height * scale))
    mode = "RGB" if images.ndim == 4 else "L"
    sheet = Image.new(mode, (per_row * cell_w, math.ceil(n / per_row) * cell_h))
    for i, image in enumerate(images):
        tile = Image.fromarray(image)
        if (cell_w, cell_h) != (width, height):
            tile = tile.resize((cell_w, cell_h), Image.Resampling.BILINEAR)
        sheet.paste(tile, ((i % per_row) * cell_w, (i // per_row) * cell_h))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    write_atomically(root / SPRITE, lambda f: f.write(buffer.getvalue()))
    return cell_w, cell_h


def _existing_config(path: Path, config_class: Any, text_format: Any) -> Any:
    config = config_class()
    if not path.exists():
        return config
    try:
        text_format.Parse(path.read_text("utf-8"), config)
    except (OSError, UnicodeDecodeError, text_format.ParseError) as exc:
        raise InputError(
            f"{path} exists but is not a readable projector config ({exc}); export to another "
            "LOGDIR or remove it"
        ) from exc
    return config


def _projector_proto() -> tuple[Any, Any]:
    try:
        from google.protobuf import text_format
        from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig
    except ImportError as exc:
        raise InputError(
            "the TensorBoard export needs tensorboard: pip install 'sentrycam-widget[export]'"
        ) from exc
    return ProjectorConfig, text_format
