"""The probe set: the fixed samples fed through the model at every checkpoint, and their thumbnails.

Built from ``(inputs, labels)`` tensors/arrays or a DataLoader (read once, so every checkpoint
sees the same samples in the same order); thumbnails are made here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.utils.data

from .checks import as_labels, check_thumbnails
from .errors import InputError


@dataclass(eq=False)
class ProbeSet:
    """The fixed probe samples fed through the model at every checkpoint, in a fixed order.

    Parameters
    ----------
    inputs
        The model's input tensor [N, ...] (kept on CPU; batches move to the model's device).
    labels
        Class indices [N].
    images
        Optional thumbnails for hover tooltips: uint8 [N, h, w] or [N, h, w, 3], or image-like
        values scaled to uint8.
    """

    inputs: torch.Tensor
    labels: np.ndarray
    images: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.inputs, torch.Tensor):
            raise InputError(f"probe inputs must be a tensor, got {type(self.inputs).__name__}")
        self.labels = as_labels(self.labels)
        n = int(self.labels.shape[0])
        if self.inputs.ndim < 1 or self.inputs.shape[0] != n:
            raise InputError(
                f"probe inputs and labels disagree: inputs have shape {tuple(self.inputs.shape)}, "
                f"labels have {n} entries"
            )
        if n < 2:
            raise InputError(f"the probe set needs at least 2 samples, got {n}")
        as_labels(self.labels, "the probe labels", min_classes=2)
        if self.inputs.is_floating_point() and not bool(torch.isfinite(self.inputs).all()):
            bad = int((~torch.isfinite(self.inputs)).sum())
            raise InputError(f"probe inputs contain {bad} NaN/inf value(s)")
        if self.images is not None:
            self.images = _as_thumbnails(self.images, n)

    @property
    def n_points(self) -> int:
        return int(self.labels.shape[0])

    @classmethod
    def from_any(cls, probe: ProbeLike, *, images: Any = None) -> ProbeSet:
        """Build a probe set from ``(x, y)`` tensors/arrays, a DataLoader of ``(x, y)``, or a ProbeSet.

        A DataLoader is read once, here, so every checkpoint sees the same samples in the same
        order even if the loader shuffles.

        Parameters
        ----------
        probe
            ``(inputs, labels)``, a DataLoader of such batches, or a ProbeSet.
        images
            Optional thumbnails (see :class:`ProbeSet`).

        Returns
        -------
        ProbeSet
            The probe set.
        """
        if isinstance(probe, ProbeSet):
            if images is None:
                return probe
            return cls(probe.inputs, probe.labels, images)
        if isinstance(probe, torch.utils.data.DataLoader):
            inputs, labels = _read_loader(probe)
            return cls(inputs, labels, images)
        if isinstance(probe, (tuple, list)) and len(probe) == 2:
            return cls(_as_input_tensor(probe[0]), probe[1], images)
        raise InputError(
            "probe must be (inputs, labels) tensors/arrays or a DataLoader yielding (inputs, "
            f"labels) batches, got {type(probe).__name__}"
        )

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary stored in the run manifest.

        Returns
        -------
        dict
            ``n_points``, ``input_shape``, ``input_dtype`` and ``has_images``.
        """
        return {
            "n_points": self.n_points,
            "input_shape": list(self.inputs.shape[1:]),
            "input_dtype": str(self.inputs.dtype).replace("torch.", ""),
            "has_images": self.images is not None,
        }


ProbeLike = ProbeSet | tuple[Any, Any] | torch.utils.data.DataLoader


def images_from_inputs(inputs: Any) -> np.ndarray:
    """Thumbnails for tooltips from image-like probe inputs [N, h, w], [N, 1|3, h, w] or [N, h, w, 3].

    Scales the whole set's value range to 0..255 (one scale for all images, so they stay
    comparable).
    """
    x = np.asarray(inputs.detach().cpu() if isinstance(inputs, torch.Tensor) else inputs)
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
        x = np.moveaxis(x, 1, -1)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if not (x.ndim == 3 or (x.ndim == 4 and x.shape[-1] == 3)):
        raise InputError(
            f"cannot make thumbnails from inputs of shape {x.shape}; expected [N, h, w], "
            "[N, 1|3, h, w] or [N, h, w, 3]"
        )
    x = x.astype(np.float64)
    lo, hi = float(np.min(x)), float(np.max(x))
    scaled = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return np.round(scaled * 255).astype(np.uint8)


def _read_loader(loader: torch.utils.data.DataLoader[Any]) -> tuple[torch.Tensor, np.ndarray]:
    xs, ys = [], []
    for batch in loader:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise InputError("the probe DataLoader must yield (inputs, labels) batches")
        xs.append(_as_input_tensor(batch[0]))
        ys.append(as_labels(batch[1]))
    if not xs:
        raise InputError("the probe DataLoader yielded no batches")
    return torch.cat(xs), np.concatenate(ys)


def _as_input_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        tensor = x.detach().cpu()
    else:
        try:
            tensor = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as exc:
            raise InputError(f"probe inputs must be a tensor or array: {exc}") from exc
    if tensor.dtype == torch.float64:
        tensor = tensor.float()
    return tensor


def _as_thumbnails(images: Any, n: int) -> np.ndarray:
    array = np.asarray(images)
    if array.dtype != np.uint8:
        array = images_from_inputs(array)
    return check_thumbnails(array, n)
