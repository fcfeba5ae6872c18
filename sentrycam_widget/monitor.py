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
projectors still see checkpoints in increasing order. ``close()`` drains everything and raises
:class:`WorkerError` if the worker failed (the failure is also shown in the widget).

Threading (see benchmarks/widget_training_slowdown.py): the worker limits its own torch
intra-op threads to ``worker_threads`` (default 1: two OpenMP teams on two cores spin-wait on
each other) and lowers its own scheduling priority with ``worker_nice`` (Linux per-thread nice
value), so the training loop keeps the cores and projection fills the gaps. With PyTorch's
OpenMP backend ``torch.set_num_threads`` sets the calling thread's team size *and* a
process-wide default that every thread reads on its first parallel operation (checked with
torch 2.13: a thread that had not used torch yet came up with 1 thread after the worker's
call). The monitor therefore fixes the constructing (training) thread's own setting first, so
training keeps the thread count it had.

While a worker runs, Python's GIL switch interval is 0.5 ms instead of 5 ms (restored when the
last worker ends): the projector's many small torch steps hold the GIL between ops, and a
training loop of small ops waited up to the full interval at each of its own (digits CNN, 20
epochs per block: training +23 % with the monitor on at 5 ms against +7–10 % at 0.5 ms).
"""

from __future__ import annotations

import copy
import logging
import numbers
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .alerts import AlertEngine
from .capture import ProbeSet, Recorder, images_from_inputs
from .errors import InputError, WorkerError
from .pipeline import HistoryBefore, project_checkpoint, project_run, resume_projector
from .projection import graph
from .projection.base import Projector, available_methods, make_projector
from .records import Checkpoint, Frame
from .store import RunStore
from .widget import SentryCamWidget, widget_from_store

log = logging.getLogger("sentrycam_widget")

_MAX_THUMBNAIL_BYTES = 16 * 1024 * 1024
AlertCallback = Callable[[dict[str, Any]], None]


class _GilSwitchInterval:
    """Shortens Python's GIL switch interval while at least one worker runs (module doc)."""

    SECONDS = 0.0005

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = sys.getswitchinterval()

    def acquire(self) -> None:
        with self._lock:
            if self._users == 0:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, self.SECONDS))
            self._users += 1

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                sys.setswitchinterval(self._saved)


_GIL_SWITCH = _GilSwitchInterval()


@dataclass
class _Queue:
    """Checkpoints waiting for the worker: bounded, newest wins, overflow kept for backfill."""

    size: int
    pending: list[Checkpoint] = field(default_factory=list)
    skipped: dict[int, Checkpoint] = field(default_factory=dict)
    closing: bool = False
    busy: bool = False
    cond: threading.Condition = field(default_factory=threading.Condition)

    def put(self, checkpoint: Checkpoint) -> None:
        with self.cond:
            if len(self.pending) >= self.size:
                oldest = self.pending.pop(0)
                self.skipped[oldest.index] = oldest
            self.pending.append(checkpoint)
            self.cond.notify_all()

    def take(self) -> tuple[str, list[Checkpoint]] | None:
        """Next job: ``("live", [ckpt])`` first, else ``("backfill", gap)``; None once closed."""
        with self.cond:
            while True:
                if self.pending:
                    self.busy = True
                    return "live", [self.pending.pop(0)]
                if self.skipped:
                    self.busy = True
                    return "backfill", self._first_gap()
                if self.closing:
                    return None
                self.busy = False
                self.cond.notify_all()
                self.cond.wait()

    def _first_gap(self) -> list[Checkpoint]:
        indices = sorted(self.skipped)
        gap = [indices[0]]
        for i in indices[1:]:
            if i != gap[-1] + 1:
                break
            gap.append(i)
        return [self.skipped.pop(i) for i in gap]

    def wait_idle(self) -> None:
        with self.cond:
            self.cond.wait_for(lambda: not self.pending and not self.skipped and not self.busy)

    def counts(self) -> tuple[int, int]:
        with self.cond:
            return len(self.pending), len(self.skipped)


class Monitor:
    """Watch a model learn: ``mon = Monitor(model, probe=(x, y)); mon; mon.checkpoint(epoch)``.

    ``methods`` are projection methods (``available_methods()``); ``run_dir`` is where the run is
    recorded (default ``runs/<date-time>``); ``queue_size`` bounds the checkpoints waiting for
    the worker; ``on_alert(alert)`` is called (on the worker thread) for every alert raised;
    ``device`` is passed to the projectors (e.g. ``"cuda"``). ``images`` are thumbnails for the
    hover tooltip (default: derived from image-like probe inputs).

    ``methods=()`` makes a record-only monitor: checkpoints are written to the run directory (by
    the worker) but nothing is projected and there is no widget (cluster jobs; project later
    with ``sentrycam-widget project``). ``resume=True`` continues the run already in
    ``run_dir`` (same probe labels) after a restart: new checkpoints are numbered after the
    stored ones, frames the stored run lacks are backfilled first, projectors resume from the
    stored frames and the widget shows the whole run; alert detectors start afresh.
    """

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
        resume: bool = False,
    ) -> None:
        self.methods = _check_methods(methods)
        if int(queue_size) < 1:
            raise InputError(f"queue_size must be >= 1, got {queue_size}")
        if on_alert is not None and not callable(on_alert):
            raise InputError("on_alert must be callable(alert_dict)")
        probe_set = ProbeSet.from_any(probe, images=images)
        self._recorder = Recorder(model, probe_set, layer=layer, head=head)
        options = {m: dict((method_options or {}).get(m, {})) for m in self.methods}
        if device is not None:
            for opts in options.values():
                opts.setdefault("device", device)
        self._options = options
        self._projectors: dict[str, Projector] = {
            m: make_projector(m, **options[m]) for m in self.methods
        }
        thumbnails = _thumbnails(probe_set)
        if resume and run_dir is None:
            raise InputError("resume=True needs the run_dir of the run to continue")
        self.store = RunStore.create(
            _default_run_dir() if run_dir is None else Path(run_dir),
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
        self._queue = _Queue(int(queue_size))
        stored = self.store.checkpoint_indices()
        self._resumed = bool(stored)
        self._next_index = stored[-1] + 1 if stored else 0
        self._epoch = 0
        self._announced = self._next_index - 1
        self._gap_states: dict[tuple[str, int], dict[str, Any]] = {}
        self.alert_engines = {m: AlertEngine() for m in self.methods}
        self._held_alerts: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.alerts: list[dict[str, Any]] = []
        self._last_live = self._next_index - 1
        self._error: BaseException | None = None
        self._warned = False
        self._closed = False
        self._projecting: str | None = None
        self._latest_epoch: int | None = None
        self._worker_threads = int(worker_threads)
        self._worker_nice = int(worker_nice)
        torch.set_num_threads(torch.get_num_threads())  # pin this thread's count (module doc)
        self._worker = threading.Thread(target=self._run, name="sentrycam-worker", daemon=True)
        _GIL_SWITCH.acquire()  # released by the worker when it ends
        try:
            self._worker.start()
        except BaseException:
            _GIL_SWITCH.release()
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
        """Capture the model now and queue it for projection; returns the checkpoint index.

        Never waits for projection. After a worker failure nothing more is captured (the
        error is shown in the widget and raised by :meth:`close`).

        Parameters
        ----------
        epoch
            The epoch (int >= 0); left out, the last epoch given is kept (0 before any).
        step
            The global optimiser step (int >= 0), recorded beside the epoch; at least one of
            ``epoch`` and ``step`` must be given.
        val_loss
            Validation loss, stored as the scalar ``val_loss``.
        **scalars
            Further numbers to store with the checkpoint (``train_loss=...``).

        Returns
        -------
        int or None
            The checkpoint's index in the run, or None after a worker failure.
        """
        return self._record(self._recorder.capture, epoch, step=step, val_loss=val_loss, **scalars)

    def _record(
        self,
        capture: Callable[..., Checkpoint],
        epoch: int | None,
        *,
        step: int | None,
        val_loss: float | None,
        **scalars: float,
    ) -> int | None:
        """Number, capture (``capture(index=, epoch=, step=, scalars=)``) and queue a checkpoint."""
        if self._closed:
            raise InputError("this monitor is closed; create a new Monitor to record another run")
        if self._error is not None:
            if not self._warned:
                warnings.warn(
                    f"sentrycam worker failed, not capturing: {self._error}", stacklevel=2
                )
                self._warned = True
            return None
        if epoch is None and step is None:
            raise InputError("checkpoint() needs an epoch or a step (or both)")
        if epoch is not None:
            self._epoch = _count("epoch", epoch)
        step = None if step is None else _count("step", step)
        if val_loss is not None:
            scalars = {"val_loss": val_loss, **scalars}
        index = self._next_index
        checkpoint = capture(index=index, epoch=self._epoch, step=step, scalars=scalars)
        self._next_index += 1
        self._queue.put(checkpoint)
        return index

    def flush(self) -> None:
        """Wait until every queued and skipped checkpoint is projected (or the worker failed)."""
        self._queue.wait_idle()

    def close(self) -> None:
        """Flush, stop the worker and raise :class:`WorkerError` if it failed."""
        if not self._closed:
            self._closed = True
            with self._queue.cond:
                self._queue.closing = True
                self._queue.cond.notify_all()
            self._worker.join()
        if self._error is not None:
            raise WorkerError(f"the sentrycam worker failed: {self._error}") from self._error

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ viewing
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        if self.widget is None:
            return {"text/plain": f"record-only sentrycam monitor writing to {self.store.path}"}
        return self.widget._repr_mimebundle_(**kwargs)

    def save_html(self, path: str | os.PathLike[str], title: str | None = None) -> Path:
        """Write one self-contained offline HTML file with every frame sent so far."""
        from .html_export import export_html

        if self.widget is None:
            raise InputError("a record-only monitor (methods=()) has no widget to save")
        return export_html(self.widget, path, title or f"sentrycam run {self.store.path.name}")

    @staticmethod
    def open(run_dir: str | os.PathLike[str]) -> RunViewer:
        """Show a recorded run (every stored checkpoint and frame) without a model."""
        return RunViewer(run_dir)

    # ------------------------------------------------------------------ worker thread
    def _run(self) -> None:
        _lower_priority(self._worker_nice)
        torch.set_num_threads(self._worker_threads)
        try:
            if self.methods:
                graph.warm_up()  # while the first epoch trains, not in the first frame's latency
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
            _GIL_SWITCH.release()

    def _continue_stored_run(self) -> None:
        """Backfill the stored run's missing frames, resume projectors, show the stored run."""
        for method in self.methods:
            project_run(self.store, method, threads=None, **self._options[method])
            resume_projector(self._projectors[method], self.store, method, before=self._next_index)
        if self.widget is None:
            return
        for checkpoint in self.store.checkpoints():
            if checkpoint.index < self._next_index:
                self._latest_epoch = checkpoint.epoch
                self.widget.add_checkpoint(checkpoint)
        for method in self.methods:
            for frame in self.store.frames(method):
                if frame.index < self._next_index:
                    self.widget.add_frame(frame)

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

    def _announce(self, upto: Checkpoint) -> list[Checkpoint]:
        """Store and show every checkpoint up to ``upto`` not yet sent; returns the skipped ones."""
        with self._queue.cond:
            waiting = {c.index: c for c in self._queue.skipped.values()}
        skipped = [waiting[i] for i in range(self._announced + 1, upto.index) if i in waiting]
        self._latest_epoch = upto.epoch
        for checkpoint in [*skipped, upto]:
            self.store.append_checkpoint(checkpoint)
            if self.widget is not None:
                self.widget.add_checkpoint(checkpoint, self._status())
        self._announced = upto.index
        return skipped

    def _project_live(self, checkpoint: Checkpoint) -> None:
        if checkpoint.index > self._last_live + 1:
            # A gap opens: remember each projector's state before it, for the backfill.
            for method, projector in self._projectors.items():
                self._gap_states[(method, self._last_live + 1)] = copy.deepcopy(
                    projector.state_dict()
                )
        skipped = self._announce(checkpoint)
        for method in self.methods:
            # Alert engines see every checkpoint in order; a skipped one has no frame yet, so
            # only its feature-space signals count. Its alerts wait for its backfilled frame.
            for gap_checkpoint in skipped:
                alerts = self.alert_engines[method].update(gap_checkpoint, None)
                self._held_alerts[(method, gap_checkpoint.index)] = alerts
                self._deliver_alerts(method, gap_checkpoint.epoch, alerts)
            self._project(self._projectors[method], checkpoint, live=True)
        self._last_live = checkpoint.index

    def _project_gap(self, gap: list[Checkpoint]) -> None:
        first = gap[0].index
        for method in self.methods:
            projector = make_projector(method, **self._options[method])
            projector.resume(
                HistoryBefore(self.store, first), self._gap_states.pop((method, first), None)
            )
            for checkpoint in gap:
                self._project(projector, checkpoint, live=False)

    def _project(self, projector: Projector, checkpoint: Checkpoint, *, live: bool) -> None:
        method = projector.method
        engine = self.alert_engines[method]
        held = self._held_alerts.pop((method, checkpoint.index), [])

        def attach_alerts(frame: Frame) -> None:
            frame.alerts.extend(engine.update(checkpoint, frame) if live else held)

        self._projecting = f"{method} @ epoch {checkpoint.epoch}"
        self.widget.set_status(self._status())
        frame = project_checkpoint(
            projector, checkpoint, self.store, annotate=attach_alerts, threads=None
        )
        self._projecting = None
        self.widget.add_frame(frame, self._status())
        if live:
            self._deliver_alerts(method, frame.epoch, frame.alerts)

    def _deliver_alerts(self, method: str, epoch: int, alerts: list[dict[str, Any]]) -> None:
        """Log each alert once and hand it to ``on_alert`` (on this worker thread)."""
        for alert in alerts:
            record = {"method": method, **alert}
            self.alerts.append(record)
            log.warning("sentrycam alert at epoch %s (%s): %s", epoch, method, alert["explanation"])
            if self._on_alert is not None:
                self._on_alert(record)

    def _status(self, drained: bool = False) -> dict[str, Any]:
        """The widget's status line; ``drained`` only once the closed worker has no work left."""
        queued, backfill = self._queue.counts()
        return {
            "latest_epoch": self._latest_epoch,
            "captured": self._next_index,
            "projecting": self._projecting,
            "queued": queued,
            "backfill": backfill,
            "error": None
            if self._error is None
            else f"{type(self._error).__name__}: {self._error}",
            "closed": drained and self._error is None,
        }

    def _publish_status(self, drained: bool = False) -> None:
        if self.widget is not None:
            self.widget.set_status(self._status(drained))


class RunViewer:
    """A recorded run in the widget (``Monitor.open``); display it or ``save_html`` it."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.store = RunStore.open(run_dir)
        self.widget = widget_from_store(self.store)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def save_html(self, path: str | os.PathLike[str], title: str | None = None) -> Path:
        from .html_export import export_html

        return export_html(self.widget, path, title or f"sentrycam run {self.store.path.name}")


def _check_methods(methods: Iterable[str]) -> list[str]:
    if isinstance(methods, str):
        methods = [methods]
    chosen = list(dict.fromkeys(methods))
    unknown = [m for m in chosen if m not in available_methods()]
    if unknown:
        raise InputError(
            f"unknown projection method(s) {unknown}; available: {', '.join(available_methods())}"
        )
    return chosen


def _count(name: str, value: Any) -> int:
    """A non-negative integer epoch/step (ints, integral floats and numpy integers)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a non-negative integer, got {value!r}")
    if value != int(value) or value < 0:
        raise InputError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _thumbnails(probe: ProbeSet) -> np.ndarray | None:
    """Hover thumbnails: the probe's images, or small image-like inputs scaled to uint8."""
    if probe.images is not None:
        return probe.images
    shape = tuple(probe.inputs.shape)
    image_like = len(shape) == 3 or (len(shape) == 4 and 1 in (shape[1], shape[-1]))
    if not image_like or probe.inputs.numel() > _MAX_THUMBNAIL_BYTES:
        return None
    try:
        return images_from_inputs(probe.inputs)
    except InputError:
        return None


def _default_run_dir() -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{os.getpid()}-{time.monotonic_ns() % 10_000:04d}"


def _lower_priority(nice: int) -> None:
    """Raise this thread's nice value (Linux: per thread) so training keeps the CPU first."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as exc:
        log.info("could not lower the sentrycam worker's priority: %s", exc)
