"""Decision background and prediction round trip (SPEC §2.6); shared by every inverse method.

The background is the head's decision over a square grid covering the layout: each cell centre
is decoded to a representation, classified by the checkpoint's head, and given the margin
``m = (z1 − z2) / (z1 − zmin)`` of its logits. Cells with m < 0.15 are boundary (alpha 0, painted
white); elsewhere alpha = round(255 · 0.9 · m / max(m)).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..records import Background, Head

BOUNDARY_MARGIN = 0.15
PAD_FRACTION = 0.1
_BATCH = 8192


def square_extent(embedding: np.ndarray, pad: float = PAD_FRACTION) -> tuple[float, ...]:
    """Bounding box of the points, padded by ``pad`` of its size per side, then made square.

    Square as the reference does it: both axes span [min(x0, y0), max(x1, y1)].
    """
    lo = embedding.min(axis=0).astype(np.float64)
    hi = embedding.max(axis=0).astype(np.float64)
    size = np.maximum(hi - lo, 1e-6)
    lo, hi = lo - pad * size, hi + pad * size
    low, high = float(lo.min()), float(hi.max())
    return (low, high, low, high)


def grid_points(extent: tuple[float, ...], resolution: int) -> np.ndarray:
    """Cell centres [R·R, 2], row-major with row 0 at the bottom (y0)."""
    x0, x1, y0, y1 = extent
    xs = np.linspace(x0, x1, resolution, dtype=np.float32)
    ys = np.linspace(y0, y1, resolution, dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def logit_margin(logits: torch.Tensor) -> torch.Tensor:
    """(top1 − top2) / (top1 − min) per row, 0 when all logits are equal."""
    top2 = torch.topk(logits, 2, dim=1).values
    spread = top2[:, 0] - logits.min(dim=1).values
    return torch.where(spread > 0, (top2[:, 0] - top2[:, 1]) / spread.clamp_min(1e-12), 0.0)


@torch.no_grad()
def decision_background(
    decode: Callable[[torch.Tensor], torch.Tensor],
    head: Head,
    extent: tuple[float, ...],
    resolution: int = 200,
    device: torch.device | str = "cpu",
) -> Background:
    """Paint the head's decision regions over ``extent`` through the decoder (SPEC §2.6)."""
    grid = torch.from_numpy(grid_points(extent, resolution)).to(device)
    classes, margins = [], []
    for start in range(0, grid.shape[0], _BATCH):
        logits = head.forward_torch(decode(grid[start : start + _BATCH]))
        classes.append(logits.argmax(dim=1))
        margins.append(logit_margin(logits))
    cls = torch.cat(classes).cpu().numpy().reshape(resolution, resolution)
    m = torch.cat(margins).double().cpu().numpy().reshape(resolution, resolution)
    return Background(classes=cls, alpha=margin_alpha(m), extent=extent)


def margin_alpha(m: np.ndarray) -> np.ndarray:
    """alpha = round(255 · 0.9 · m / max(m)) where m ≥ 0.15, else 0 (boundary, painted white)."""
    peak = float(m.max())
    alpha = np.zeros(m.shape, dtype=np.uint8)
    if peak > 0:
        strong = m >= BOUNDARY_MARGIN
        alpha[strong] = np.round(255.0 * 0.9 * m[strong] / peak).astype(np.uint8)
    return alpha


@torch.no_grad()
def reconstruction_predictions(
    encode: Callable[[torch.Tensor], torch.Tensor],
    decode: Callable[[torch.Tensor], torch.Tensor],
    head: Head,
    features: torch.Tensor,
) -> np.ndarray:
    """``argmax head(dec(enc(x)))`` per point; PPR compares it with ``argmax head(x)``."""
    positions = torch.cat(
        [encode(features[start : start + _BATCH]) for start in range(0, features.shape[0], _BATCH)]
    )
    return decoded_predictions(decode, head, positions)


@torch.no_grad()
def decoded_predictions(
    decode: Callable[[torch.Tensor], torch.Tensor], head: Head, positions: torch.Tensor
) -> np.ndarray:
    """``argmax head(dec(y))`` per 2-D position ``y`` (the shown positions' predictions)."""
    preds = [
        head.forward_torch(decode(positions[start : start + _BATCH])).argmax(dim=1)
        for start in range(0, positions.shape[0], _BATCH)
    ]
    return torch.cat(preds).cpu().numpy().astype(np.int64)
