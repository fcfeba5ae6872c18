"""The training audit: geometry alerts for a recorded or imported run, kept in its directory.

:func:`audit_run` replays every stored checkpoint through :class:`~.alerts.AlertEngine` (the
checkpoint's ``val_loss`` scalar feeds the baseline rule; the frames of one projection method,
when the run has them, feed the 2-D signals), then stores the result in the run directory:

- ``RUN/alerts.json`` (written atomically): the whole audit — alerts, first firing per signal,
  the per-checkpoint signal values and which frames were used;
- each frame of the audited method is rewritten (atomically) with its checkpoint's alerts in
  ``frame.alerts``, so the widget shows them on its timeline.

This is what ``python -m sentrycam_widget audit RUN_DIR --json`` runs. Each alert is logged at
INFO level on the ``sentrycam_widget`` logger. Like every writer of a run, it must not run while
another process is still writing the same run.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from typing import Any

from ._jsonio import json_bytes, parse_json
from .alerts import AlertEngine, first_firing
from .errors import InputError, RunFormatError
from .records import Frame
from .store import RunStore

log = logging.getLogger("sentrycam_widget")

ALERTS_FILE = "alerts.json"
AUDIT_FORMAT = "sentrycam-audit"
AUDIT_VERSION = 1


def audit_run(
    store_or_path: RunStore | str | os.PathLike[str],
    method: str = "sentrycam",
    **engine_options: Any,
) -> dict[str, Any]:
    """Compute the alerts of a stored run, store them in the run directory and return them.

    Returns ``{"alerts": [...], "first_firing": {signal: checkpoint | None, ...}, ...}`` where
    ``first_firing`` has every signal plus ``reference`` (earliest of the paper's V and D),
    ``combined`` and ``val_loss``. Without frames of ``method`` only the feature-space signals
    (and ``val_loss``) are computed, and ``note`` says so. ``engine_options`` go to
    :class:`~.alerts.AlertEngine` (e.g. ``eval_size``).
    """
    store = _as_store(store_or_path)
    engine = AlertEngine(**engine_options)
    stored = set(store.frame_indices(method)) if method in store.methods() else set()
    alerts: list[dict[str, Any]] = []
    audited, framed, val_loss = 0, [], False
    for checkpoint in store.checkpoints():  # one checkpoint (and its frame) in memory at a time
        frame = _readable_frame(store, method, checkpoint.index, stored)
        alerts.extend(alert.to_dict() for alert in engine.update(checkpoint, frame))
        audited += 1
        val_loss = val_loss or "val_loss" in checkpoint.scalars
        if frame is not None:
            framed.append(frame.index)
    if not audited:
        raise InputError(f"{store.location} holds no readable checkpoint to audit")
    result = {
        "format": AUDIT_FORMAT,
        "version": AUDIT_VERSION,
        "method": method,
        "checkpoints": audited,
        "frames_used": len(framed),
        "note": _coverage_note(method, len(framed), audited, val_loss),
        "alerts": alerts,
        "first_firing": first_firing(alerts),
        "records": engine.records,
    }
    _attach_to_frames(store, method, framed, alerts)
    store.files.write_bytes(ALERTS_FILE, json_bytes(result))
    for alert in alerts:
        log.info("sentrycam audit of %s: %s", store.location, alert["explanation"])
    return result


def load_audit(store_or_path: RunStore | str | os.PathLike[str]) -> dict[str, Any] | None:
    """The audit stored by :func:`audit_run`, or None if the run was never audited."""
    store = _as_store(store_or_path)
    path = store.files.describe(ALERTS_FILE)
    try:
        data = store.files.read_bytes(ALERTS_FILE)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RunFormatError(f"{path}: unreadable audit ({exc})") from exc
    result = parse_json(data, path, "audit")
    if not isinstance(result, dict) or result.get("format") != AUDIT_FORMAT:
        raise RunFormatError(f"{path}: not a sentrycam audit (format must be {AUDIT_FORMAT!r})")
    if result.get("version") != AUDIT_VERSION or not isinstance(result.get("alerts"), list):
        raise RunFormatError(f"{path}: unsupported audit version {result.get('version')!r}")
    return result


def format_audit(result: dict[str, Any]) -> str:
    """A human-readable summary: coverage, first firing per signal, then every alert."""
    first = result["first_firing"]
    epochs = {r["checkpoint"]: r["epoch"] for r in result.get("records", [])}
    lines = [
        f"audit ({result.get('method')}): {result.get('checkpoints')} checkpoints, "
        f"{len(result['alerts'])} alerts",
    ]
    if result.get("note"):
        lines.append(f"note: {result['note']}")
    lines.append("first firing (checkpoint index, epoch):")
    width = max(len(name) for name in first)
    for name, index in first.items():
        where = "-" if index is None else f"{index} (epoch {epochs.get(index, '?')})"
        lines.append(f"  {name:<{width}}  {where}")
    if result["alerts"]:
        lines.append("alerts:")
        lines.extend(
            f"  [{a['checkpoint']}] {a['signal']}: {a['explanation']}" for a in result["alerts"]
        )
    return "\n".join(lines)


def _as_store(store_or_path: RunStore | str | os.PathLike[str]) -> RunStore:
    if isinstance(store_or_path, RunStore):
        return store_or_path
    if isinstance(store_or_path, (str, os.PathLike)):
        return RunStore.open(store_or_path)
    raise InputError(f"expected a RunStore or a run directory, got {type(store_or_path).__name__}")


def _readable_frame(store: RunStore, method: str, index: int, stored: set[int]) -> Frame | None:
    """The frame of ``method`` for checkpoint ``index``; None where there is none or it is
    damaged (then warned about, naming it)."""
    if index not in stored:
        return None
    return store.readable_frame(method, index)


def _coverage_note(method: str, n_frames: int, n_checkpoints: int, val_loss: bool) -> str:
    parts = []
    if n_frames == 0:
        parts.append(
            f"no {method!r} frames: 2-D signals (V, D, between/within) not computed, "
            "feature-space signals only"
        )
    elif n_frames < n_checkpoints:
        parts.append(f"2-D signals from the {n_frames} of {n_checkpoints} checkpoints with frames")
    if not val_loss:
        parts.append("no val_loss scalar: the baseline rule was not computed")
    return "; ".join(parts)


def _attach_to_frames(
    store: RunStore, method: str, indices: list[int], alerts: list[dict[str, Any]]
) -> None:
    """Rewrite each audited frame with exactly its checkpoint's alerts (idempotent), reading
    one frame at a time."""
    by_checkpoint: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for alert in alerts:
        by_checkpoint[alert["checkpoint"]].append(alert)
    for index in indices:
        frame = store.frame(method, index)
        if frame.alerts == by_checkpoint.get(frame.index, []):
            continue
        frame.alerts = by_checkpoint.get(frame.index, [])
        store.append_frame(frame, replace=True)
