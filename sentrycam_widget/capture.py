"""Checkpoint records and heads: what one training checkpoint contributes to a run.

A :class:`Checkpoint` holds, for the fixed probe set, the chosen layer's representations, the
model's logits, the labels and a copy of the head (representation -> logits). Everything
downstream (store, projectors, metrics, alerts, widget) consumes these records; only this
module and the projectors know torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from .errors import InputError


@runtime_checkable
class Head(Protocol):
    """Maps representations [M, D] to logits [M, C]; needed for the decision background and PPR."""

    def __call__(self, x: np.ndarray) -> np.ndarray: ...

    def forward_torch(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(eq=False)
class LinearHead:
    """``logits = x @ weight.T + bias``: the last Linear layer of a classifier, copied."""

    weight: np.ndarray
    bias: np.ndarray

    def __post_init__(self) -> None:
        self.weight = np.ascontiguousarray(self.weight, dtype=np.float32)
        self.bias = np.ascontiguousarray(self.bias, dtype=np.float32)
        if self.weight.ndim != 2:
            raise InputError(f"head weight must be [C, D], got shape {self.weight.shape}")
        if self.bias.shape != (self.weight.shape[0],):
            raise InputError(
                f"head bias must be [C] = [{self.weight.shape[0]}], got shape {self.bias.shape}"
            )
        _require_finite("head weight", self.weight)
        _require_finite("head bias", self.bias)

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_classes(self) -> int:
        return int(self.weight.shape[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32) @ self.weight.T + self.bias

    def forward_torch(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.as_tensor(self.weight, device=x.device, dtype=x.dtype)
        b = torch.as_tensor(self.bias, device=x.device, dtype=x.dtype)
        return x @ w.T + b


@dataclass(eq=False)
class TorchHead:
    """Any torch module from the captured layer to the logits (a deep copy, frozen, on CPU)."""

    module: torch.nn.Module

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = self.forward_torch(torch.as_tensor(np.asarray(x, dtype=np.float32)))
        return out.cpu().numpy().astype(np.float32, copy=False)

    def forward_torch(self, x: torch.Tensor) -> torch.Tensor:
        param = next(self.module.parameters(), None)
        if param is not None and param.device != x.device:
            self.module.to(x.device)
        with torch.no_grad():
            return self.module(x)


@dataclass(eq=False)
class Checkpoint:
    """One checkpoint of one run: representations, logits and head for the fixed probe set.

    ``index`` is the checkpoint's position in the run (0, 1, 2, ...); ``epoch`` is the user's
    step or epoch number shown in the UI. ``scalars`` holds optional numbers such as
    ``val_loss`` and ``train_loss``.
    """

    index: int
    epoch: int
    features: np.ndarray
    labels: np.ndarray
    logits: np.ndarray | None = None
    head: Head | None = None
    scalars: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.features = np.ascontiguousarray(self.features, dtype=np.float32)
        self.labels = np.ascontiguousarray(self.labels).astype(np.int64, copy=False)
        if self.logits is None and self.head is not None:
            self.logits = np.asarray(self.head(self.features), dtype=np.float32)
        if self.logits is not None:
            self.logits = np.ascontiguousarray(self.logits, dtype=np.float32)
        self.validate()

    @property
    def n_points(self) -> int:
        return int(self.features.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    @property
    def predictions(self) -> np.ndarray | None:
        """argmax of the logits, or None when the checkpoint has no logits."""
        return None if self.logits is None else self.logits.argmax(axis=1)

    def validate(self) -> None:
        """Fail fast, naming the problem, on anything a projector could not use."""
        if self.features.ndim != 2 or self.features.shape[0] < 2 or self.features.shape[1] < 1:
            raise InputError(
                f"features must be [N, D] with N >= 2, got shape {self.features.shape}"
            )
        _require_finite(f"features of checkpoint {self.index} (epoch {self.epoch})", self.features)
        n = self.features.shape[0]
        if self.labels.shape != (n,):
            raise InputError(f"labels must be [N] = [{n}], got shape {self.labels.shape}")
        if self.labels.min() < 0:
            raise InputError("labels must be non-negative class indices")
        if np.unique(self.labels).size < 2:
            raise InputError(
                "the probe set has only one class; SentryCam needs at least two classes to "
                "draw decision regions and class geometry"
            )
        if self.logits is not None:
            if self.logits.ndim != 2 or self.logits.shape[0] != n:
                raise InputError(
                    f"logits must be [N, C] with N = {n}, got shape {self.logits.shape}"
                )
            _require_finite(f"logits of checkpoint {self.index} (epoch {self.epoch})", self.logits)
        for name, value in self.scalars.items():
            if not isinstance(value, (int, float, np.floating, np.integer)):
                raise InputError(f"scalar {name!r} must be a number, got {type(value).__name__}")


def _require_finite(what: str, array: np.ndarray) -> None:
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise InputError(f"{what} contain {bad} NaN/inf value(s)")
