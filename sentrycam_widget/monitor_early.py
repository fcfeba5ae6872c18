"""Step-cadence early alerts of a live Monitor: looks every N steps, their store and their frames.

``Monitor(..., early_every=N)`` makes one :class:`StepAlerts`; ``Monitor.step(step)`` calls
:meth:`StepAlerts.look`. On the training thread a look is only one no-grad forward of the probe
set (no head copy); its features and logits go to a bounded queue (``put`` waits only when the
``early`` thread is :data:`QUEUE_LOOKS` looks behind) and the ``sentrycam-early`` thread runs
:class:`~sentrycam_widget.alerts.EarlyWatch`'s signals and triggers, in step order. New alerts
are written at once to ``RUN/early_alerts.json`` (atomically, every early alert so far in
:meth:`~sentrycam_widget.records.Alert.to_dict` form, with its ``step``) and handed to the
monitor's ``deliver`` (log, ``on_alert``) on that thread. The projection worker adds each one to
the next frame of every method (:meth:`StepAlerts.for_frame`), so it is stored in that frame
and drawn as an alert marker on the widget's timeline, its explanation starting with its step.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from itertools import takewhile
from typing import Any

from ._jsonio import json_bytes, parse_json
from .alerts import EarlyWatch
from .capture import Recorder
from .checks import check_count
from .errors import InputError, RunFormatError, WorkerError
from .records import Alert
from .store import RunStore

log = logging.getLogger("sentrycam_widget")

EARLY_ALERTS_FILE = "early_alerts.json"
QUEUE_LOOKS = 8
EARLY_FORMAT = "sentrycam-early-alerts"


class StepAlerts:
    """EarlyWatch looks every ``every`` optimiser steps, kept in the run and handed to frames.

    Parameters
    ----------
    recorder, store
        The monitor's recorder (model, probe set, layer) and run store.
    every
        Look when ``step % every == 0``.
    options
        :class:`~sentrycam_widget.alerts.EarlyWatch` keywords (``eval_size``, ``signals``, ...).
    deliver
        Called on the early thread with each look's new alerts.
    """

    def __init__(
        self,
        recorder: Recorder,
        store: RunStore,
        every: int,
        options: dict[str, Any],
        deliver: Callable[[list[Alert]], None],
    ) -> None:
        self.every = check_count("early_every", every)
        if self.every < 1:
            raise InputError(f"early_every must be >= 1 step, got {every}")
        self.watch = EarlyWatch(**options)
        self._recorder, self._store = recorder, store
        self._labels = recorder.probe.labels
        self._lock = threading.Lock()
        self._given: dict[str, int] = {}  # method -> alerts already put in its frames
        self._deliver = deliver
        self._last_step = -1
        self._looks: queue.Queue[tuple[Any, ...] | None] = queue.Queue(QUEUE_LOOKS)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sentrycam-early", daemon=True)
        self._thread.start()

    def look(self, step: int, epoch: int | None, last_epoch: int, checkpoint: int) -> None:
        """Look at the model now if ``step`` is due (its signals follow on the early thread).

        Parameters
        ----------
        step, epoch
            The optimiser step (increasing) and the epoch (None: ``last_epoch``).
        last_epoch
            The monitor's last epoch.
        checkpoint
            Index of the last checkpoint recorded (-1 before any).
        """
        epoch = last_epoch if epoch is None else check_count("epoch", epoch, negative=True)
        step = check_count("step", step)
        if step <= self._last_step:
            raise InputError(f"steps must increase; got step {step} after {self._last_step}")
        self._last_step = step
        if self._error is not None:
            raise WorkerError(f"the early-alert thread failed: {self._error}") from self._error
        if step % self.every == 0:
            self._looks.put((*self._recorder.forward(), step, epoch, checkpoint))

    def close(self) -> None:
        """Finish the queued looks, stop the thread; raise :class:`WorkerError` if it failed."""
        if self._thread.is_alive():
            self._looks.put(None)
            self._thread.join()
        if self._error is not None:
            raise WorkerError(f"the early-alert thread failed: {self._error}") from self._error

    def _run(self) -> None:
        while (job := self._looks.get()) is not None:
            if self._error is not None:
                continue  # drain, so the training thread never waits on a failed thread
            try:
                self._deliver(self._update(*job))
            except BaseException as exc:  # reaches the next look() and close()
                self._error = exc
                log.error("sentrycam early alerts failed", exc_info=exc)

    def _update(
        self, features: Any, logits: Any, step: int, epoch: int, checkpoint: int
    ) -> list[Alert]:
        with self._lock:
            alerts = self.watch.update(
                features,
                step=step,
                epoch=epoch,
                labels=self._labels,
                logits=logits,
                checkpoint=checkpoint,
            )
            if alerts:
                record = {
                    "format": EARLY_FORMAT,
                    "every": self.every,
                    "alerts": [alert.to_dict() for alert in self.watch.alerts],
                }
                self._store.files.write_bytes(EARLY_ALERTS_FILE, json_bytes(record))
        return alerts

    def for_frame(self, method: str, index: int) -> list[Alert]:
        """Early alerts raised after checkpoint ``index - 1`` was recorded and not yet put in a
        frame of ``method``: they go in its frame of checkpoint ``index``."""
        with self._lock:
            start = self._given.get(method, 0)
            due = list(takewhile(lambda a: a.checkpoint < index, self.watch.alerts[start:]))
            self._given[method] = start + len(due)
        return due


def monitor_step(monitor: Any, step: int, epoch: int | None = None) -> None:
    """``Monitor.step``: call after each optimiser step; every ``early_every``-th step looks.

    The look's forward pass runs now; its alerts follow on the early thread (logged, stored,
    passed to ``on_alert``, drawn at the next checkpoint's frame).

    Parameters
    ----------
    monitor
        The :class:`~sentrycam_widget.monitor.Monitor` (``self``).
    step
        The global optimiser step (increasing).
    epoch
        The epoch (left out: the last one given).
    """
    if monitor._early is None or monitor._closed:
        raise InputError("step() needs an open Monitor created with early_every=N")
    monitor._early.look(step, epoch, monitor._epoch, monitor._next_index - 1)


def step_alerts(
    recorder: Recorder,
    store: RunStore,
    every: int | None,
    options: dict[str, Any] | None,
    deliver: Callable[[list[Alert]], None],
) -> StepAlerts | None:
    """The monitor's :class:`StepAlerts`, or None when ``every`` is None (early alerts off).

    Parameters
    ----------
    recorder, store, every, options, deliver
        As for :class:`StepAlerts` (``options`` None: EarlyWatch's defaults).

    Returns
    -------
    StepAlerts or None
    """
    if every is None:
        return None
    return StepAlerts(recorder, store, every, dict(options or {}), deliver)


def load_early_alerts(store: RunStore) -> list[Alert]:
    """The early alerts a monitor with ``early_every`` stored in ``store`` ([] if none).

    Parameters
    ----------
    store
        The run.

    Returns
    -------
    list[Alert]
        In the order they were raised, each with its ``step``.
    """
    path = store.files.describe(EARLY_ALERTS_FILE)
    try:
        data = parse_json(store.files.read_bytes(EARLY_ALERTS_FILE), path, "early alerts")
    except FileNotFoundError:
        return []
    if not isinstance(data, dict) or data.get("format") != EARLY_FORMAT:
        raise RunFormatError(f"{path}: not a sentrycam early-alert file")
    return [Alert.from_dict(alert) for alert in data.get("alerts", [])]
