"""Static pictures of frames: the class palette, the decision-background colouring, PNG sheets.

The palette and the background colouring (SPEC §2.6) are the single definition shared with the
JS widget, so a PNG contact sheet and the live widget show the same colours for the same frame.

Palette rule (mirrored in the widget): classes 0-9 take matplotlib's ``tab10``; classes 10-19
take the light partners of ``tab20`` in the same order; beyond 20 colours, hue steps by the golden
ratio (``h = (0.1 + 0.618034 * (i - 20)) mod 1``) at saturation 0.65 and value 0.85/0.65
alternating, rounded to uint8.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import InputError
from .records import Background, Frame

_TAB10 = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]
_TAB20_LIGHT = [
    (174, 199, 232),
    (255, 187, 120),
    (152, 223, 138),
    (255, 152, 150),
    (197, 176, 213),
    (196, 156, 148),
    (247, 182, 210),
    (199, 199, 199),
    (219, 219, 141),
    (158, 218, 229),
]
_GOLDEN = 0.618034
_WHITE = 255.0
_PANEL_INCHES = 3.2
_DPI = 100


def palette(n_classes: int) -> np.ndarray:
    """Categorical colours for ``n_classes`` classes as uint8 [C, 3] (rule in the module doc)."""
    if n_classes < 1:
        raise InputError(f"palette needs at least one class, got n_classes={n_classes}")
    colours = (_TAB10 + _TAB20_LIGHT)[:n_classes]
    colours += [_golden_colour(i) for i in range(len(colours), n_classes)]
    return np.asarray(colours, dtype=np.uint8)


def _golden_colour(i: int) -> tuple[int, int, int]:
    hue = (0.1 + _GOLDEN * (i - 20)) % 1.0
    value = 0.85 if i % 2 == 0 else 0.65
    r, g, b = colorsys.hsv_to_rgb(hue, 0.65, value)
    return round(r * 255), round(g * 255), round(b * 255)


def background_rgba(background: Background, colours: np.ndarray) -> np.ndarray:
    """Colour a decision raster: uint8 [R, R, 4], row 0 at the bottom like the raster itself.

    SPEC §2.6 with ``m' = alpha / 255``: ``rgb = 0.5·m'·class + (1 − m')·white``; boundary cells
    (alpha 0) are white. Fully opaque. Flip rows (``[::-1]``) before writing a top-down image.
    """
    colours = np.asarray(colours, dtype=np.uint8)
    if background.classes.size and int(background.classes.max()) >= len(colours):
        raise InputError(
            f"background has class {int(background.classes.max())} but the palette has only "
            f"{len(colours)} colours"
        )
    strength = background.alpha.astype(np.float64)[..., None] / 255.0
    class_rgb = colours[background.classes].astype(np.float64)
    rgb = 0.5 * strength * class_rgb + (1.0 - strength) * _WHITE
    rgba = np.empty((*background.classes.shape, 4), dtype=np.uint8)
    rgba[..., :3] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    rgba[..., 3] = 255
    return rgba


def frame_title(frame: Frame) -> str:
    """``epoch E · T=0.93 · PPR=0.97``: the numbers a reader checks first on a frame.

    A NaN/inf metric reads ``missing``; points without finite coordinates are counted
    (``· 3 points missing``), since they cannot be drawn.
    """
    parts = [f"epoch {frame.epoch}"]
    for key, name in (("trustworthiness", "T"), ("ppr", "PPR")):
        if key in frame.metrics:
            value = float(frame.metrics[key])
            parts.append(f"{name}={value:.3f}" if np.isfinite(value) else f"{name}=missing")
    missing = int((~np.isfinite(frame.embedding).all(axis=1)).sum())
    if missing:
        parts.append(f"{missing} point{'s' if missing > 1 else ''} missing")
    return " · ".join(parts)


def draw_frame(
    ax,
    frame: Frame,
    labels: np.ndarray,
    predictions: np.ndarray | None,
    colours: np.ndarray,
    point_size: float = 4.0,
) -> None:
    """Draw one frame on a matplotlib axis: background, then points as SPEC §2.6 says.

    Correct points are dots in the label's colour; misclassified points are a ring in the label's
    colour around a dot in the predicted class's colour. Without predictions every point is a dot.
    Points without finite coordinates are left out and counted in the title; a background whose
    extent is not finite is left out.
    """
    labels = np.asarray(labels)
    emb = frame.embedding
    if len(labels) != len(emb):
        raise InputError(f"labels has {len(labels)} entries but the frame has {len(emb)} points")
    rgb = np.asarray(colours, dtype=np.float64) / 255.0
    background = frame.background
    if background is not None and np.isfinite(np.asarray(background.extent, float)).all():
        _draw_background(ax, background, colours)
    wrong = np.zeros(len(emb), dtype=bool)
    if predictions is not None:
        predictions = np.asarray(predictions)
        if predictions.shape != labels.shape:
            raise InputError(
                f"predictions must have the labels' shape {labels.shape}, got {predictions.shape}"
            )
        wrong = predictions != labels
    drawable = np.isfinite(emb).all(axis=1)
    wrong &= drawable
    right = ~wrong & drawable
    ax.scatter(emb[right, 0], emb[right, 1], s=point_size, c=rgb[labels[right]], linewidths=0)
    if wrong.any():
        ax.scatter(
            emb[wrong, 0],
            emb[wrong, 1],
            s=point_size * 6,
            facecolors="none",
            edgecolors=rgb[labels[wrong]],
            linewidths=0.8,
        )
        ax.scatter(
            emb[wrong, 0], emb[wrong, 1], s=point_size, c=rgb[predictions[wrong]], linewidths=0
        )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(frame_title(frame), fontsize=8)


def _draw_background(ax, background: Background, colours: np.ndarray) -> None:
    x0, x1, y0, y1 = background.extent
    r = background.resolution
    half_x = (x1 - x0) / (2 * (r - 1)) if r > 1 else 0.5
    half_y = (y1 - y0) / (2 * (r - 1)) if r > 1 else 0.5
    ax.imshow(
        background_rgba(background, colours),
        origin="lower",
        extent=(x0 - half_x, x1 + half_x, y0 - half_y, y1 + half_y),
        interpolation="nearest",
        zorder=0,
    )


def contact_sheet(
    frames: Sequence[Frame],
    labels: np.ndarray,
    predictions_per_frame: Sequence[np.ndarray | None],
    path: str | Path,
    columns: int = 4,
) -> Path:
    """Write a PNG grid of frames (one 320×320 px panel each, ``columns`` wide) and return its path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    if not frames:
        raise InputError("contact_sheet needs at least one frame")
    if len(predictions_per_frame) != len(frames):
        raise InputError(
            f"predictions_per_frame has {len(predictions_per_frame)} entries for {len(frames)} frames"
        )
    labels = np.asarray(labels)
    n_classes = _class_count(frames, labels, predictions_per_frame)
    colours = palette(n_classes)
    columns = max(1, min(columns, len(frames)))
    rows = -(-len(frames) // columns)
    fig = Figure(
        figsize=(columns * _PANEL_INCHES, rows * _PANEL_INCHES), dpi=_DPI, layout="constrained"
    )
    for i, (frame, preds) in enumerate(zip(frames, predictions_per_frame, strict=True)):
        ax = fig.add_subplot(rows, columns, i + 1)
        draw_frame(ax, frame, labels, preds, colours)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=_DPI)
    return path


def _class_count(
    frames: Sequence[Frame], labels: np.ndarray, predictions: Sequence[np.ndarray | None]
) -> int:
    highest = int(labels.max())
    for frame, preds in zip(frames, predictions, strict=True):
        if preds is not None:
            highest = max(highest, int(np.max(preds)))
        if frame.background is not None:
            highest = max(highest, int(frame.background.classes.max()))
    return highest + 1
