"""The alert record (temporary home until records.py lands)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import RunFormatError


@dataclass(frozen=True)
class Alert:
    """One alert: which signal fired, where, by how much, and why (one line).

    ``checkpoint`` is the index of the checkpoint it was raised at (for a step-cadence alert,
    the last checkpoint recorded before it, or -1 before the first one); ``epoch`` the user's
    epoch; ``step`` the optimiser step when the alert came from a finer cadence; ``value`` and
    ``threshold`` are the trigger's statistic and its bar; ``level`` the signal's own value;
    ``class_index`` the class a per-class alert is about. :meth:`to_dict` gives the JSON form
    stored in frames and ``alerts.json``; :meth:`from_dict` reads it back, including alerts
    written before ``step`` and ``class_index`` existed.
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

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form; ``step`` and ``class_index`` only when set."""
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
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        """Read an alert's JSON form; a missing or mistyped field fails with its name."""
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
