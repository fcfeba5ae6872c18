"""``Monitor(..., worker="process")``: capture in the training process, project in a child.

The thread worker (:mod:`sentrycam_widget.monitor`) projects inside the training process and
shares its GIL and cores: a Python-heavy loop such as Lightning's, with its per-step hooks,
waits on it (README, "The Lightning callback"). Here the training process only records: a
record-only :class:`~sentrycam_widget.monitor.Monitor` (``methods=()``) captures on the training
thread and stores each checkpoint from its own worker thread, exactly as ``methods=()`` does,
and a child process (:mod:`sentrycam_widget.monitor_child`, started as
``sys.executable -m sentrycam_widget.monitor_child`` — a fresh interpreter, safe in Jupyter
and with torch's threads running, never a fork) projects every stored checkpoint with every
method, in order, under the run's lease, at ``worker_nice`` with ``worker_threads`` torch and
numba threads, and stores the alert engines' alerts with its frames. In the kernel a
:class:`~sentrycam_widget.live.LiveFeed` thread, the widget's only writer, looks at the run
every ``interval`` seconds, sends new checkpoints and frames to ``self.widget``, hands each new
frame's alerts to ``on_alert`` and keeps the status line.

Unlike the thread worker: the child projects every checkpoint in order, so when it is slower
than training it falls behind rather than skipping to the newest; alerts reach ``on_alert``
only once their frame is on disk and the feed has looked (``stop_on_alert`` stops later than
with the thread); a new child costs a fresh interpreter (imports, numba kernels loaded from
their on-disk cache) at the start of each monitor. ``flush`` waits until the child has
projected every checkpoint captured so far and the widget shows it; ``close`` ends the child
and raises :class:`~sentrycam_widget.errors.WorkerError` with the end of the child's stderr if
it failed; the frames it finished stay in the run and on screen, and the training process
records on whatever happens to the child.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .errors import InputError, WorkerError
from .live import LiveFeed
from .monitor_alerts import AlertCallback, deliver_alerts
from .monitor_early import load_early_alerts
from .monitor_inputs import check_methods, method_options_for
from .projection.base import make_projector
from .records import Alert, Checkpoint, Frame
from .viewer import WidgetView, open_run
from .widget import SentryCamWidget

if TYPE_CHECKING:
    from .monitor import Monitor

log = logging.getLogger("sentrycam_widget")

# Thread pools sized by the environment at start-up (OpenMP, BLAS, numba): the child's are
# capped at worker_threads from the start.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)
STDERR_TAIL = 2000  # characters of the child's stderr quoted when it fails


class ProcessMonitor(WidgetView):
    """A :class:`~sentrycam_widget.monitor.Monitor` whose projection runs in a child process.

    Made by ``Monitor(..., worker="process")``, with the same calls (``checkpoint``, ``step``,
    ``flush``, ``close``, ``widget``, ``alerts``, ``store``).

    Parameters
    ----------
    model, probe, layer, head, methods, run_dir, queue_size, on_alert, device
        As for :class:`~sentrycam_widget.monitor.Monitor` (``queue_size`` bounds the
        checkpoints waiting to be stored; projection has no queue to skip from).
    images, class_names, method_options, resume, early_every, early_options
        As for :class:`~sentrycam_widget.monitor.Monitor`; ``method_options`` (and ``device``)
        go to the child as JSON.
    worker_threads, worker_nice
        The child's torch and numba threads, and the nice value added to each of its threads.
    worker_idle
        Run the child's threads under Linux's ``SCHED_IDLE`` policy instead of ``worker_nice``:
        they get a core only when no other thread wants it, so training never waits for them,
        and projection stalls while training keeps every core busy.
    worker_share
        Must stay 1: pacing is for the worker thread (the child's nice value does its part).
    interval
        Seconds between the kernel's looks at the run for new frames (each look reads the new
        checkpoints back for the widget; README, "The Lightning callback").
    recorder
        The :class:`~sentrycam_widget.monitor.Monitor` class, which records (``methods=()``).
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
        worker_share: float = 1.0,
        resume: bool = False,
        early_every: int | None = None,
        early_options: dict[str, Any] | None = None,
        worker_idle: bool = False,
        interval: float = 1.0,
        recorder: type[Monitor],
    ) -> None:
        self.methods = check_methods(methods)
        if float(worker_share) != 1.0:
            raise InputError(
                "worker_share paces the worker thread; the process worker runs at its own nice "
                "value (worker_nice) instead"
            )
        if int(worker_threads) < 1:
            raise InputError(f"worker_threads must be >= 1, got {worker_threads}")
        options = _child_options(self.methods, method_options, device)
        projectors = {m: make_projector(m, **options[m]) for m in self.methods}  # fail fast
        self.recording = recorder(
            model,
            probe,
            layer,
            head,
            methods=(),
            run_dir=run_dir,
            queue_size=queue_size,
            on_alert=on_alert,
            images=images,
            class_names=class_names,
            resume=resume,
            early_every=early_every,
            early_options=early_options,
        )
        self.store = self.recording.store
        self._on_alert = on_alert
        self._first = self.recording._next_index
        self._failure: str | None = None
        self._warned = self._closed = False
        self._sync_lock = threading.Lock()
        self._syncs = 0
        self.widget: SentryCamWidget | None = None
        self.feed: LiveFeed | None = None
        self._child: subprocess.Popen[bytes] | None = None
        if not self.methods:
            return
        early_after = None
        if early_every is not None:
            steps = [-1 if a.step is None else a.step for a in load_early_alerts(self.store)]
            early_after = max(steps, default=-1)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        try:
            self._child = _start_child(
                self._location(),
                options,
                (int(worker_threads), int(worker_nice), bool(worker_idle)),
                (self._first, early_after),
                self._stderr,
            )
        except BaseException:
            self._stderr.close()
            self.recording.close()
            raise
        self.widget = SentryCamWidget(
            self.store.labels,
            {m: p.has_inverse for m, p in projectors.items()},
            class_names=self.store.class_names,
            thumbnails=self.store.images,
        )
        self.feed = LiveFeed(
            self.store,
            self.methods,
            interval,
            widget=self.widget,
            on_frame=self._frame_arrived,
            status=self._status,
        )
        self.feed.start()

    # ------------------------------------------------------------------ training-thread API
    def checkpoint(
        self,
        epoch: int | None = None,
        *,
        step: int | None = None,
        val_loss: float | None = None,
        **scalars: float,
    ) -> int | None:
        """Capture the model now and store it for the child (see ``Monitor.checkpoint``).

        Parameters
        ----------
        epoch, step, val_loss, **scalars
            As for :meth:`Monitor.checkpoint <sentrycam_widget.monitor.Monitor.checkpoint>`.

        Returns
        -------
        int or None
            The checkpoint's index, or None after the recording thread failed.
        """
        self._warn_once()
        return self.recording.checkpoint(epoch, step=step, val_loss=val_loss, **scalars)

    def _record(self, capture: Callable[..., Checkpoint], epoch: Any, **axes: Any) -> int | None:
        """``Monitor._record`` (sharded capture under DDP)."""
        self._warn_once()
        return self.recording._record(capture, epoch, **axes)

    def step(self, step: int, epoch: int | None = None) -> None:
        """``Monitor.step``: call after each optimiser step when ``early_every`` is set."""
        self.recording.step(step, epoch)

    @property
    def alerts(self) -> list[Alert]:
        """Every alert delivered so far (frames' and early ones), each with its ``method``."""
        return self.recording.alerts

    def flush(self) -> None:
        """Wait until every captured checkpoint is stored and projected by the child and the
        widget shows its frames (or the child has ended)."""
        self.recording.flush()
        if self._child is None:
            return
        self._sync_child()
        self.feed.sync()

    def close(self) -> None:
        """Store what is left, let the child project it and end, and raise
        :class:`~sentrycam_widget.errors.WorkerError` if it (or the recording) failed."""
        if not self._closed:
            self._closed = True
            try:
                self.recording.close()
            finally:
                if self._child is not None:
                    self._child.stdin.close()  # no more checkpoints: the child drains and ends
                    self._child.wait()
                    self._child.stdout.close()
                    self.feed.sync()
                    self.feed.stop()
                    self._stderr.close()
        if self._failure is not None:
            raise WorkerError(
                f"sentrycam projection failed: {self._failure}. Every captured checkpoint is "
                f"stored in {self.store.path}; `python -m sentrycam_widget project "
                f"{self.store.path} --method M` for M in {', '.join(self.methods)} computes "
                "the missing frames"
            )

    def __enter__(self) -> ProcessMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    open = staticmethod(open_run)  # ProcessMonitor.open(run_dir): a recorded run, no model

    @property
    def child_pid(self) -> int | None:
        """The projecting child's process id (None for a record-only monitor)."""
        return None if self._child is None else self._child.pid

    # ------------------------------------------------------------------ kernel side
    def _location(self) -> str:
        path = self.store.path
        return str(path.resolve()) if isinstance(path, Path) else str(path)

    def _sync_child(self) -> None:
        """Ask the child for a whole pass over the run and wait for its answer (or its end)."""
        assert self._child is not None
        with self._sync_lock:
            if self._child.poll() is not None:
                return
            self._syncs += 1
            number = self._syncs
            try:
                self._child.stdin.write(f"sync {number}\n".encode())
                self._child.stdin.flush()
            except OSError:  # the child has ended; close() reports how
                return
            while line := self._child.stdout.readline():
                if line.split() == [b"synced", str(number).encode()]:
                    return

    def _frame_arrived(self, frame: Frame) -> None:
        """On the feed thread: deliver the alerts the child's engine stored with a new frame
        (early alerts in it were delivered when they were raised; a resumed run's earlier
        frames carry none)."""
        if frame.index < self._first:
            return
        raised = [Alert.from_dict(a) for a in frame.alerts if a["checkpoint"] == frame.index]
        deliver_alerts(raised, frame.method, self.recording.alerts, self._on_alert)

    def _status(self) -> dict[str, Any]:
        """The status line's fields beyond the feed's own; notices a failed child."""
        assert self._child is not None
        code = self._child.poll()
        if code not in (None, 0) and self._failure is None:
            self._failure = _describe_failure(code, self._stderr)
            log.error("sentrycam projection failed, still recording: %s", self._failure)
        error = None if self._failure is None else f"projection failed: {self._failure}"
        return {"captured": self.recording._next_index, "error": error}

    def _warn_once(self) -> None:
        if self._failure is not None and not self._warned:
            warnings.warn(
                f"sentrycam projection failed ({self._failure.splitlines()[0]}); still "
                f"recording checkpoints in {self.store.path}",
                stacklevel=3,
            )
            self._warned = True


def _child_options(
    methods: list[str],
    method_options: dict[str, dict[str, Any]] | None,
    device: str | torch.device | None,
) -> dict[str, dict[str, Any]]:
    """Each method's projector options, as the child receives them (JSON)."""
    options = method_options_for(methods, method_options, device)
    for method, opts in options.items():
        if "device" in opts:
            opts["device"] = str(opts["device"])
        try:
            options[method] = json.loads(json.dumps(opts))
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"method_options[{method!r}] must be JSON (numbers, strings, lists) to reach "
                f"the projection process: {exc}"
            ) from exc
    return options


def _start_child(
    location: str,
    options: dict[str, dict[str, Any]],
    worker: tuple[int, int, bool],
    session: tuple[int, int | None],
    stderr: Any,
) -> subprocess.Popen[bytes]:
    """``sys.executable -m sentrycam_widget.monitor_child``, with this package on its path;
    ``worker`` is (threads, nice, idle), ``session`` (first checkpoint, early alerts after
    step)."""
    (threads, nice, idle), (first, early_after) = worker, session
    command = [sys.executable, "-m", "sentrycam_widget.monitor_child", location]
    command += ["--methods", json.dumps(options), "--threads", str(threads)]
    command += ["--nice", str(nice), "--first", str(first)]
    if early_after is not None:
        command += ["--early-after", str(early_after)]
    if idle:
        command.append("--idle")
    env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, str(threads))}
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env
    )


def _describe_failure(code: int, stderr: Any) -> str:
    """How the (ended) child ended and the end of what it wrote to stderr."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "an unknown signal"
        how = f"the projection process was killed by signal {-code} ({name})"
    else:
        how = f"the projection process exited with code {code}"
    size = stderr.seek(0, os.SEEK_END)  # the child has ended: its shared offset may move
    stderr.seek(max(0, size - STDERR_TAIL))
    tail = stderr.read().decode(errors="replace").strip()
    return f"{how}: {tail}" if tail else how
