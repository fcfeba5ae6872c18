"""Record types of a run: checkpoints, heads, frames, backgrounds and alerts, with validators.

Every layer above (capture, store, projectors, metrics, alerts, widget) exchanges these records.
This module sits at the bottom: it imports only numpy and the package's errors (torch only
inside the head methods that need it), never the projection package or the capture machinery.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .checks import as_labels
from .errors import InputError, RunFormatError

if TYPE_CHECKING:
    import torch


class Head(abc.ABC):
    """Maps representations [M, D] to logits [M, C]; needed for the decision background and PPR."""

    @abc.abstractmethod
    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits [M, C] of representations ``x`` [M, D], as float32 numpy."""

    @abc.abstractmethod
    def forward_torch(self, x: torch.Tensor) -> torch.Tensor:
        """The same map on a torch tensor, on ``x``'s device and dtype.

        Parameters
        ----------
        x
            Representations [M, D].

        Returns
        -------
        torch.Tensor
            Logits [M, C].
        """


@dataclass(eq=False)
class LinearHead(Head):
    """``logits = x @ weight.T + bias``: the last Linear layer of a classifier, copied.

    Parameters
    ----------
    weight
        float32 [C, D].
    bias
        float32 [C].
    """

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
        require_finite("head weight", self.weight)
        require_finite("head bias", self.bias)

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_classes(self) -> int:
        return int(self.weight.shape[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32) @ self.weight.T + self.bias

    def forward_torch(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        w = torch.as_tensor(self.weight, device=x.device, dtype=x.dtype)
        b = torch.as_tensor(self.bias, device=x.device, dtype=x.dtype)
        return x @ w.T + b


@dataclass(eq=False)
class TorchHead(Head):
    """Any torch module from the captured layer to the logits (a deep copy, frozen, on CPU).

    Parameters
    ----------
    module
        Maps flattened representations [M, D] to logits [M, C].
    """

    module: torch.nn.Module

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = self.forward_torch(torch.as_tensor(np.asarray(x, dtype=np.float32)))
        return out.cpu().numpy().astype(np.float32, copy=False)

    def forward_torch(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        param = next(self.module.parameters(), None)
        if param is not None and param.device != x.device:
            self.module.to(x.device)
        with torch.no_grad():
            return self.module(x)


@dataclass(eq=False)
class Checkpoint:
    """One checkpoint of one run: representations, logits and head for the fixed probe set.

    Parameters
    ----------
    index
        Position of the checkpoint in the run (0, 1, 2, ...).
    epoch
        The user's epoch number.
    features
        float32 [N, D] representations of the probe set.
    labels
        int [N] class indices.
    logits
        float32 [N, C]; computed from ``head`` when left out.
    head
        Maps representations to logits (decision background, PPR).
    scalars
        Optional numbers such as ``val_loss`` and ``train_loss``.
    step
        The optional global optimiser step (the UI can show it instead of the epoch).
    """

    index: int
    epoch: int
    features: np.ndarray
    labels: np.ndarray
    logits: np.ndarray | None = None
    head: Head | None = None
    scalars: dict[str, float] = field(default_factory=dict)
    step: int | None = None

    def __post_init__(self) -> None:
        self.features = np.ascontiguousarray(self.features, dtype=np.float32)
        self.labels = as_labels(self.labels)
        self._check_linear_head()
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

    def _check_linear_head(self) -> None:
        if not isinstance(self.head, LinearHead) or self.features.ndim != 2:
            return
        if self.head.in_features != self.features.shape[1]:
            raise InputError(
                f"the head expects {self.head.in_features} input features but the features of "
                f"checkpoint {self.index} have D = {self.features.shape[1]}"
            )
        logits_shape = np.shape(self.logits) if self.logits is not None else ()
        if len(logits_shape) == 2 and logits_shape[1] != self.head.n_classes:
            raise InputError(
                f"the head has {self.head.n_classes} classes but the logits of checkpoint "
                f"{self.index} have {logits_shape[1]}"
            )

    def validate(self) -> None:
        """Fail fast, naming the problem, on anything a projector could not use."""
        if self.features.ndim != 2 or self.features.shape[0] < 2 or self.features.shape[1] < 1:
            raise InputError(
                f"features must be [N, D] with N >= 2, got shape {self.features.shape}"
            )
        require_finite(f"features of checkpoint {self.index} (epoch {self.epoch})", self.features)
        n = self.features.shape[0]
        as_labels(self.labels, n=n, min_classes=2)
        if self.logits is not None:
            if self.logits.ndim != 2 or self.logits.shape[0] != n:
                raise InputError(
                    f"logits must be [N, C] with N = {n}, got shape {self.logits.shape}"
                )
            require_finite(f"logits of checkpoint {self.index} (epoch {self.epoch})", self.logits)
        for name, value in self.scalars.items():
            if not isinstance(value, (int, float, np.floating, np.integer)):
                raise InputError(f"scalar {name!r} must be a number, got {type(value).__name__}")
        if self.step is not None and (
            isinstance(self.step, bool)
            or not isinstance(self.step, (int, np.integer))
            or self.step < 0
        ):
            raise InputError(f"step must be a non-negative integer or None, got {self.step!r}")


def require_finite(what: str, array: np.ndarray) -> None:
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise InputError(f"{what} contain {bad} NaN/inf value(s)")


@dataclass(eq=False)
class Background:
    """Decision-region raster behind a frame (SPEC §2.6).

    Parameters
    ----------
    classes
        uint16 [R, R]: the head's argmax class per grid cell.
    alpha
        uint8 [R, R]: colour strength per cell.
    extent
        ``(x0, x1, y0, y1)`` of the grid in frame coordinates.

    ``classes[i, j]`` is the head's argmax class at grid cell (row i, column j) and ``alpha`` its
    colour strength m' scaled to 0..255 (0 on boundary cells, which are painted white). Row 0 is
    the bottom of the plot (y = y0); cell centres lie on ``linspace(x0, x1, R)`` and
    ``linspace(y0, y1, R)`` with ``extent = (x0, x1, y0, y1)``.
    """

    classes: np.ndarray
    alpha: np.ndarray
    extent: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        self.classes = np.ascontiguousarray(self.classes, dtype=np.uint16)
        self.alpha = np.ascontiguousarray(self.alpha, dtype=np.uint8)
        self.extent = tuple(float(v) for v in self.extent)  # type: ignore[assignment]
        if self.classes.ndim != 2 or self.classes.shape != self.alpha.shape:
            raise InputError(
                f"background classes and alpha must be equal [R, R] rasters, got "
                f"{self.classes.shape} and {self.alpha.shape}"
            )

    @property
    def resolution(self) -> int:
        return int(self.classes.shape[0])


@dataclass(eq=False)
class Frame:
    """One method's picture of one checkpoint: 2-D positions of all N probe points and extras.

    Parameters
    ----------
    method
        The projection method that made it.
    index, epoch
        Its checkpoint's index and the user's epoch.
    embedding
        float32 [N, 2] positions.
    background
        The decision-region raster (methods with an inverse).
    recon_pred
        int64 [N]: the head's prediction on the decoded points (methods with an inverse
        only); PPR is ``mean(recon_pred == checkpoint predictions)``.
    metrics
        SPEC §4 numbers.
    timings
        Seconds per pipeline stage.
    alerts
        The alert records raised at this checkpoint (JSON form).
    """

    method: str
    index: int
    epoch: int
    embedding: np.ndarray
    background: Background | None = None
    recon_pred: np.ndarray | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.embedding = np.ascontiguousarray(self.embedding, dtype=np.float32)
        if self.embedding.ndim != 2 or self.embedding.shape[1] != 2:
            raise InputError(f"frame embedding must be [N, 2], got shape {self.embedding.shape}")
        if self.recon_pred is not None:
            self.recon_pred = np.ascontiguousarray(self.recon_pred, dtype=np.int64)


@dataclass(frozen=True)
class Alert:
    """One alert: which signal fired, where, by how much, and why (one line).

    :meth:`to_dict` gives the JSON form stored in frames and ``alerts.json``; :meth:`from_dict`
    reads it back, including alerts written before ``step``, ``class_index`` and ``method``
    existed.

    Parameters
    ----------
    checkpoint
        Index of the checkpoint it was raised at (for a step-cadence alert, the last checkpoint
        recorded before it, or -1 before the first one).
    epoch
        The user's epoch.
    signal, trigger
        The signal that fired and the rule that fired on it.
    value, threshold
        The trigger's statistic and its bar.
    level
        The signal's own value.
    explanation
        Why, in one line.
    step
        The optimiser step (the checkpoint's, or the look's for a finer cadence).
    class_index
        The class a per-class alert is about.
    method
        The projection method whose layout the alert engine watched (set by the monitor).
    """

    checkpoint: int
    epoch: int
    signal: str
    trigger: str
    value: float
    threshold: float
    level: float | None
    explanation: str
    step: int | None = None
    class_index: int | None = None
    method: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form.

        Returns
        -------
        dict
            The fields; ``step``, ``class_index`` and ``method`` only when set.
        """
        out: dict[str, Any] = {
            "checkpoint": int(self.checkpoint),
            "epoch": int(self.epoch),
            "signal": self.signal,
            "trigger": self.trigger,
            "value": float(self.value),
            "threshold": float(self.threshold),
            "level": None if self.level is None else float(self.level),
            "explanation": self.explanation,
        }
        if self.step is not None:
            out["step"] = int(self.step)
        if self.class_index is not None:
            out["class_index"] = int(self.class_index)
        if self.method is not None:
            out["method"] = self.method
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        """Read an alert's JSON form; a missing or mistyped field fails with its name.

        Parameters
        ----------
        data
            What :meth:`to_dict` wrote.

        Returns
        -------
        Alert
            The alert.
        """
        if not isinstance(data, dict):
            raise RunFormatError(f"an alert must be a JSON object, got {type(data).__name__}")
        missing = [k for k in _ALERT_FIELDS if k not in data]
        if missing:
            raise RunFormatError(f"alert {data!r} lacks {', '.join(missing)}")
        try:
            return cls(
                checkpoint=int(data["checkpoint"]),
                epoch=int(data["epoch"]),
                signal=str(data["signal"]),
                trigger=str(data["trigger"]),
                value=float(data["value"]),
                threshold=float(data["threshold"]),
                level=None if data["level"] is None else float(data["level"]),
                explanation=str(data["explanation"]),
                step=None if data.get("step") is None else int(data["step"]),
                class_index=None if data.get("class_index") is None else int(data["class_index"]),
                method=None if data.get("method") is None else str(data["method"]),
            )
        except (TypeError, ValueError) as exc:
            raise RunFormatError(f"alert {data!r} has a field of the wrong type: {exc}") from exc


_ALERT_FIELDS = (
    "checkpoint",
    "epoch",
    "signal",
    "trigger",
    "value",
    "threshold",
    "level",
    "explanation",
)
