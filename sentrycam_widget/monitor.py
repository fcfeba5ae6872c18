"""The live monitor: capture on the training thread, project on one background worker.

``Monitor.checkpoint`` runs the probe set through the model (main thread, milliseconds) and
hands the checkpoint to a bounded queue; it never waits. When the queue is full the oldest
waiting checkpoint is set aside ("skipped") and the newest wins, so the picture stays current.
One worker thread owns everything else: it writes checkpoints and frames to the run directory,
projects each checkpoint with every method (``pipeline.project_checkpoint``), runs one
:class:`~sentrycam_widget.alerts.AlertEngine` per method (alerts are stored with the frames,
drawn on the widget's timeline, logged once and passed to ``on_alert``) and is the only code
that touches the widget. When it has no live work it backfills the skipped
checkpoints, each method with a fresh projector resumed from the frames before the gap, so
projectors still see checkpoints in increasing order.

How skipped checkpoints are kept and what each failure does: ``docs/architecture.md``, "The
live monitor".

Threading details (one torch thread, nice +10, a 0.5 ms GIL switch interval, optional pacing
while training is busy): :mod:`sentrycam_widget.monitor_threads`, :mod:`~.pacing`.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .alerts import AlertEngine
from .capture import Recorder
from .checks import (
    check_captured,
    check_label_range,
    check_model_has_data,
    check_point_count,
    checkpoint_axes,
)
from .errors import InputError, WorkerError
from .monitor_alerts import AlertCallback, deliver_alerts
from .monitor_early import monitor_step, step_alerts
from .monitor_inputs import check_methods, default_run_dir, method_options_for
from .monitor_inputs import thumbnails as thumbnails_of
from .monitor_threads import GIL_SWITCH, CheckpointQueue, enter_worker
from .pacing import Pacer
from .pipeline import HistoryBefore, project_checkpoint, project_run, resumed_projector
from .probe import ProbeSet
from .projection import graph
from .projection.base import Projector, make_projector
from .records import Alert, Checkpoint, Frame, TorchHead
from .store import RunStore
from .viewer import WidgetView, open_run
from .widget import SentryCamWidget, add_stored

log = logging.getLogger("sentrycam_widget")

__all__ = ["AlertCallback", "Monitor"]


class Monitor(WidgetView):
    """Watch a model learn: ``mon = Monitor(model, probe=(x, y)); mon; mon.checkpoint(epoch)``.

    Parameters
    ----------
    model, probe, layer, head
        The model, its probe set (``(x, y)``, a DataLoader or a ProbeSet) and the layer and head
        to record, as for :class:`~sentrycam_widget.capture.Recorder`.
    methods
        Projection methods (``available_methods()``); ``()`` records without projecting and
        has no widget (cluster jobs; project later with ``sentrycam-widget project``).
    run_dir
        Where the run is recorded (a path or an fsspec URL; default ``runs/<date-time>``).
    queue_size, worker_threads, worker_nice, worker_share
        Checkpoints waiting for the worker at most; the worker's torch threads, niceness and
        share of the time while training is busy (:mod:`sentrycam_widget.pacing`; 1: no rests).
    on_alert
        Called with each :class:`~sentrycam_widget.records.Alert` (early ones on the early thread).
    device, method_options
        Passed to the projectors (``device`` to all, ``method_options[m]`` to method ``m``).
    images, class_names
        Hover thumbnails (default: from image-like probe inputs) and class names.
    resume
        Continue the run in ``run_dir`` (same probe labels): new checkpoints follow the stored
        ones, missing frames are backfilled, projectors resume; alerts start afresh.
    early_every, early_options
        :meth:`step` looks every ``early_every`` steps (None: never), ``EarlyWatch(**options)``.
    worker
        ``"thread"``: project on a thread of this process; ``"process"``: in a child process (no
        shared GIL; alerts later; more keywords): :class:`~.monitor_process.ProcessMonitor`.
    """

    def __new__(cls, *args: Any, worker: str = "thread", **kwargs: Any) -> Any:
        if worker == "process":  # the same calls; capture here, projection in a child process
            from .monitor_process import ProcessMonitor

            return ProcessMonitor(*args, recorder=cls, **kwargs)
        if worker != "thread":
            raise InputError(f"worker must be 'thread' or 'process', got {worker!r}")
        return super().__new__(cls)

    def __init__(
        self,
        model: torch.nn.Module,
        probe: Any,
        layer: str | torch.nn.Module | None = None,
        head: Any = None,
        methods: Sequence[str] = ("sentrycam",),
        run_dir: str | os.PathLike[str] | None = None,
        queue_size: int = 2,
        on_alert: AlertCallback | None = None,
        device: str | torch.device | None = None,
        *,
        images: np.ndarray | None = None,
        class_names: list[str] | None = None,
        method_options: dict[str, dict[str, Any]] | None = None,
        worker_threads: int = 1,
        worker_nice: int = 10,
        worker_share: float = 1.0,
        resume: bool = False,
        early_every: int | None = None,
        early_options: dict[str, Any] | None = None,
        worker: str = "thread",
    ) -> None:
        self.methods = check_methods(methods)
        if int(queue_size) < 1:
            raise InputError(f"queue_size must be >= 1, got {queue_size}")
        self._pacer = Pacer(float(worker_share), threading.get_ident(), self._store_in_memory)
        if on_alert is not None and not callable(on_alert):
            raise InputError("on_alert must be callable(alert), alert a sentrycam_widget.Alert")
        check_model_has_data(model)
        probe_set = ProbeSet.from_any(probe, images=images)
        check_point_count(probe_set.n_points, "the probe set")
        check_label_range(probe_set.labels, "the probe set's labels")
        self._recorder = Recorder(model, probe_set, layer=layer, head=head)
        options = method_options_for(self.methods, method_options, device)
        self._options = options
        self._projectors: dict[str, Projector] = {
            m: make_projector(m, **options[m]) for m in self.methods
        }
        thumbnails = thumbnails_of(probe_set)
        if resume and run_dir is None:
            raise InputError("resume=True needs the run_dir of the run to continue")
        self.store = RunStore.create(
            default_run_dir() if run_dir is None else run_dir,
            probe_set.labels,
            class_names=class_names,
            layer=self._recorder.layer_name,
            probe=probe_set.describe(),
            images=thumbnails,
            exist_ok=bool(resume),
        )
        self.widget: SentryCamWidget | None = None
        if self.methods:
            self.widget = SentryCamWidget(
                probe_set.labels,
                {m: p.has_inverse for m, p in self._projectors.items()},
                class_names=class_names,
                thumbnails=thumbnails,
            )
        self._on_alert = on_alert
        self._early = step_alerts(
            self._recorder, self.store, early_every, early_options, self._deliver_alerts
        )
        self._queue = CheckpointQueue(int(queue_size))
        stored = self.store.checkpoint_indices()
        self._resumed = bool(stored)
        self._next_index = stored[-1] + 1 if stored else 0
        self._epoch = 0
        self._announced = self._next_index - 1
        self._gap_states: dict[tuple[str, int], dict[str, Any]] = {}
        self.alert_engines = {m: AlertEngine() for m in self.methods}
        self._held_alerts: dict[tuple[str, int], list[Alert]] = {}
        self.alerts: list[Alert] = []
        self._last_live = self._next_index - 1
        self._error: BaseException | None = None
        self._failures: list[tuple[str, BaseException]] = []
        self._active = list(self.methods)
        self._store_lock = threading.Lock()
        self._stored: set[int] = set()
        self._head_dropped = self._warned = self._closed = False
        self._projecting: str | None = None
        self._latest_epoch: int | None = None
        self._worker_settings = (int(worker_nice), int(worker_threads), self._pacer)
        torch.set_num_threads(torch.get_num_threads())  # pin this thread's count (module doc)
        self._worker = threading.Thread(target=self._run, name="sentrycam-worker", daemon=True)
        GIL_SWITCH.acquire()  # released by the worker when it ends
        try:
            self._worker.start()
        except BaseException:
            GIL_SWITCH.release()
            raise

    # ------------------------------------------------------------------ training-thread API
    def checkpoint(
        self,
        epoch: int | None = None,
        *,
        step: int | None = None,
        val_loss: float | None = None,
        **scalars: float,
    ) -> int | None:
        """Capture the model now and queue it for projection (never waits for projection).

        Parameters
        ----------
        epoch
            The epoch, an int >= 0 (left out: the last one given, 0 before any).
        step
            The global optimiser step, an int >= 0; at least one of ``epoch`` and ``step``.
        val_loss, **scalars
            Numbers stored with the checkpoint.

        Returns
        -------
        int or None
            The checkpoint's index, or None after a worker failure (shown in the widget and
            raised by :meth:`close`).
        """
        return self._record(self._recorder.capture, epoch, step=step, val_loss=val_loss, **scalars)

    def _record(self, capture: Callable[..., Checkpoint], epoch: Any, **axes: Any) -> int | None:
        """Number, capture (``capture(index=, epoch=, step=, scalars=)``) and queue a checkpoint;
        ``axes`` are ``step``, ``val_loss`` and the other scalars."""
        if self._closed:
            raise InputError("this monitor is closed; create a new Monitor to record another run")
        if self._error is not None:
            if not self._warned:
                warnings.warn(
                    f"sentrycam worker failed, not capturing: {self._error}", stacklevel=2
                )
                self._warned = True
            return None
        if self._failures and not self._warned:
            warnings.warn(
                f"sentrycam projection failed ({self._failures[0][0]}); still recording "
                f"checkpoints in {self.store.path}",
                stacklevel=2,
            )
            self._warned = True
        self._epoch, step, scalars = checkpoint_axes(self._epoch, epoch, **axes)
        self._pacer.watch(threading.get_ident())
        index = self._next_index
        checkpoint = capture(index=index, epoch=self._epoch, step=step, scalars=scalars)
        check_captured(checkpoint, self._recorder.layer_name)
        self._next_index += 1
        spill = self._queue.put(checkpoint)
        if spill is not None:
            self._spill(spill)
        return index

    step = monitor_step  # mon.step(step): early alerts every early_every steps

    def flush(self) -> None:
        """Wait until every queued and skipped checkpoint is projected (or the worker failed)."""
        self._queue.wait_idle()

    def close(self) -> None:
        """Flush, stop the worker and raise :class:`WorkerError` if it failed."""
        if not self._closed:
            self._closed = True
            self._queue.close()
            self._worker.join()
            if self._early is not None:
                self._early.close()
        if self._error is not None:
            raise WorkerError(f"the sentrycam worker failed: {self._error}") from self._error
        if self._failures:
            failed = sorted({m for m in self.methods if m not in self._active})
            raise WorkerError(
                f"sentrycam projection failed: {'; '.join(m for m, _ in self._failures)}. Every "
                f"captured checkpoint is stored in {self.store.path}; "
                f"`python -m sentrycam_widget project {self.store.path} --method "
                f"{failed[0]}` computes the missing frames"
            ) from self._failures[0][1]

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ viewing
    open = staticmethod(open_run)  # Monitor.open(run_dir): a recorded run, without a model

    # ------------------------------------------------------------------ worker thread
    def _run(self) -> None:
        enter_worker(*self._worker_settings)
        try:
            if self.methods:
                graph.warm_up(self.store.n_points)  # while the first epoch trains
            if self._resumed:
                self._continue_stored_run()
            while (job := self._queue.take()) is not None:
                kind, checkpoints = job
                if kind == "live":
                    self._project_live(checkpoints[0])
                else:
                    self._project_gap(checkpoints)
                self._publish_status()
            self._publish_status(drained=True)
        except BaseException as exc:  # any failure must reach close() and the widget
            self._fail(exc)
        finally:
            GIL_SWITCH.release()

    def _continue_stored_run(self) -> None:
        """Backfill the stored run's missing frames, resume projectors, show the stored run."""
        for method in self.methods:
            project_run(self.store, method, threads=None, **self._options[method])
            self._projectors[method] = resumed_projector(
                self.store, method, self._next_index, **self._options[method]
            )
        if self.widget is not None:
            add_stored(self.widget, self.store, before=self._next_index)

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        log.error("sentrycam worker failed", exc_info=exc)
        with self._queue.cond:
            self._queue.pending.clear()
            self._queue.skipped.clear()
            self._queue.busy = False
            self._queue.cond.notify_all()
        self._projecting = None
        self._publish_status()

    def _spill(self, checkpoint: Checkpoint) -> None:
        """Store a skipped checkpoint from the training thread so memory stays bounded."""
        try:
            self._store_checkpoint(checkpoint)
        except Exception as exc:  # the worker stores it (or fails visibly) when it gets there
            log.warning("could not store skipped checkpoint %d yet: %s", checkpoint.index, exc)
            return
        self._queue.stored(checkpoint.index)

    def _store_in_memory(self) -> None:
        """The worker's chore when it rests: store what was captured but is only in memory."""
        for checkpoint in self._queue.in_memory():
            self._spill(checkpoint)

    def _store_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Write ``checkpoint`` once (training or worker thread); a torch head that cannot be
        exported is dropped from this and later checkpoints, the rest is kept."""
        with self._store_lock:
            if checkpoint.index in self._stored:
                return
            if self._head_dropped and isinstance(checkpoint.head, TorchHead):
                checkpoint = dataclasses.replace(checkpoint, head=None)
            try:
                self.store.append_checkpoint(checkpoint)
            except InputError as exc:
                if not isinstance(checkpoint.head, TorchHead):
                    raise
                log.error(
                    "cannot store the torch head of checkpoint %d; storing the checkpoints "
                    "without it (features, logits and scalars are kept)",
                    checkpoint.index,
                    exc_info=exc,
                )
                self._head_dropped = True
                self.store.append_checkpoint(dataclasses.replace(checkpoint, head=None))
            self._stored.add(checkpoint.index)

    def _announce(self, upto: Checkpoint) -> None:
        """Store and show every checkpoint up to ``upto`` not yet sent, one at a time; skipped
        ones also go through the alert engines (feature-space signals only: no frame yet)."""
        with self._queue.cond:
            waiting = dict(self._queue.skipped)
        self._latest_epoch = upto.epoch
        for index in range(self._announced + 1, upto.index + 1):
            if index == upto.index:
                checkpoint = upto
            elif index not in waiting:
                continue
            else:
                held = waiting.pop(index)
                checkpoint = self.store.checkpoint(index) if held is None else held
            self._store_checkpoint(checkpoint)
            self._queue.stored(index)
            if self.widget is not None:
                self.widget.add_checkpoint(checkpoint, self._status())
            if index != upto.index:
                for method in list(self._active):
                    self._guarded(method, checkpoint.index, self._hold_gap_alerts, checkpoint)
        self._announced = upto.index

    def _hold_gap_alerts(self, method: str, checkpoint: Checkpoint) -> None:
        # Alert engines see every checkpoint in order; a skipped one has no frame yet, so only
        # its feature-space signals count. Its alerts wait for its backfilled frame.
        alerts = self.alert_engines[method].update(checkpoint, None)
        self._held_alerts[(method, checkpoint.index)] = alerts
        self._deliver_alerts(alerts, method)

    def _project_live(self, checkpoint: Checkpoint) -> None:
        if checkpoint.index > self._last_live + 1:
            # A gap opens: remember each projector's state before it, for the backfill.
            for method in self._active:
                self._gap_states[(method, self._last_live + 1)] = copy.deepcopy(
                    self._projectors[method].state_dict()
                )
        self._announce(checkpoint)
        for method in list(self._active):
            self._guarded(method, checkpoint.index, self._project_latest, checkpoint)
        self._last_live = checkpoint.index

    def _project_latest(self, method: str, checkpoint: Checkpoint) -> None:
        self._project(self._projectors[method], checkpoint, live=True)

    def _project_gap(self, gap: list[int]) -> None:
        first = gap[0]
        for method in list(self._active):
            self._guarded(method, first, self._backfill, gap)

    def _backfill(self, method: str, gap: list[int]) -> None:
        projector = make_projector(method, **self._options[method])
        projector.resume(
            HistoryBefore(self.store, gap[0]), self._gap_states.pop((method, gap[0]), None)
        )
        for index in gap:  # reloaded one at a time: skipped checkpoints live on disk
            self._project(projector, self.store.checkpoint(index), live=False)

    def _guarded(self, method: str, index: int, work: Callable[..., None], *args: Any) -> None:
        """Run one method's ``work``; if it raises, log it, show it and stop that method only
        (checkpoints go on being stored, its frames so far are kept)."""
        try:
            work(method, *args)
        except Exception as exc:
            message = f"{method} at checkpoint {index}: {type(exc).__name__}: {exc}"
            self._failures.append((message, exc))
            self._active.remove(method)
            self._projecting = None
            for key in [k for k in (*self._gap_states, *self._held_alerts) if k[0] == method]:
                self._gap_states.pop(key, None)
                self._held_alerts.pop(key, None)
            log.error(
                "sentrycam projection failed (%s); %s is stopped, checkpoints are still recorded",
                message,
                method,
                exc_info=exc,
            )
            self._publish_status()

    def _project(self, projector: Projector, checkpoint: Checkpoint, *, live: bool) -> None:
        method = projector.method
        engine = self.alert_engines[method]
        held = self._held_alerts.pop((method, checkpoint.index), [])

        raised: list[Alert] = []

        def attach_alerts(frame: Frame) -> None:
            raised.extend(engine.update(checkpoint, frame) if live else held)
            early = [] if self._early is None else self._early.for_frame(method, frame.index)
            frame.alerts.extend(alert.to_dict() for alert in [*raised, *early])

        self._projecting = f"{method} @ epoch {checkpoint.epoch}"
        self.widget.set_status(self._status())
        frame = project_checkpoint(
            projector, checkpoint, self.store, annotate=attach_alerts, threads=None
        )
        self._projecting = None
        self.widget.add_frame(frame, self._status())
        if live:
            self._deliver_alerts(raised, method)

    def _deliver_alerts(self, alerts: list[Alert], method: str | None = None) -> None:
        """Log, keep and pass ``alerts`` to ``on_alert`` on this thread (``method`` None: early
        alerts); a raising callback is logged with its traceback and recording goes on."""
        deliver_alerts(alerts, method, self.alerts, self._on_alert)

    def _status(self, drained: bool = False) -> dict[str, Any]:
        """The widget's status line; ``drained`` only once the closed worker has no work left."""
        queued, backfill = self._queue.counts()
        return {
            "latest_epoch": self._latest_epoch,
            "captured": self._next_index,
            "projecting": self._projecting,
            "queued": queued,
            "backfill": backfill,
            "error": self._error_text(),
            "closed": drained and self._error is None,
        }

    def _error_text(self) -> str | None:
        if self._error is not None:
            return f"{type(self._error).__name__}: {self._error}"
        if self._failures:
            return "projection failed, still recording: " + "; ".join(m for m, _ in self._failures)
        return None

    def _publish_status(self, drained: bool = False) -> None:
        if self.widget is not None:
            self.widget.set_status(self._status(drained))
