"""A run another process is writing, shown live: new checkpoints and frames reach the widget.

``Monitor.open(RUN, follow=True)`` builds a :class:`LiveFeed`, and so does
``Monitor(..., worker="process")`` for the frames its child process writes: one daemon thread
(the widget's only writer) looks at the run every ``interval`` seconds and sends what landed
since the last look — checkpoints first, then the frames of each shown method whose checkpoint
was sent. The run may be on local disk or any fsspec URL; entries are whole when they appear,
so nothing half-written is ever shown. :meth:`LiveFeed.sync` waits for a look that began after
the call, so whatever was on disk then is on screen when it returns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .errors import InputError, RunFormatError
from .projection.base import available_methods, make_projector
from .records import Frame
from .store import RunStore
from .widget import SentryCamWidget

log = logging.getLogger("sentrycam_widget")


class LiveFeed:
    """Sends a growing run's new checkpoints and frames to a widget (call :meth:`start`).

    Parameters
    ----------
    store
        The run.
    methods
        The methods whose frames are shown (default: those stored, else sentrycam).
    interval
        Seconds between looks.
    widget
        The widget to feed (default: a new one for the run and ``methods``).
    on_frame
        Called on the feed thread with each frame after it was sent.
    status
        Called at each look for more fields of the widget's status line (``captured``,
        ``error``, ...).
    """

    def __init__(
        self,
        store: RunStore,
        methods: Sequence[str] | None = None,
        interval: float = 1.0,
        *,
        widget: SentryCamWidget | None = None,
        on_frame: Callable[[Frame], None] | None = None,
        status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        if interval <= 0:
            raise InputError(f"interval must be positive seconds, got {interval}")
        self.store = store
        self.methods = list(methods) if methods else store.methods() or ["sentrycam"]
        self.interval = float(interval)
        if widget is None:
            widget = SentryCamWidget(
                store.labels,
                {m: _has_inverse(store, m) for m in self.methods},
                class_names=store.class_names,
                thumbnails=store.images,
            )
        self.widget = widget
        self._on_frame = on_frame
        self._extra_status = status
        self._sent_checkpoints: set[int] = set()
        self._sent_frames: set[tuple[str, int]] = set()
        self._latest_epoch: int | None = None
        self._cond = threading.Condition()
        self._stopping = self._wanted = False
        self._begun = self._ended = 0  # looks begun and ended on the feed thread
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def poll(self) -> int:
        """Send everything new once (the feed thread calls this); returns how many items."""
        sent = 0
        for index in self.store.checkpoint_indices():
            if index in self._sent_checkpoints:
                continue
            try:
                checkpoint = self.store.checkpoint(index)
            except RunFormatError as exc:
                log.warning("live view: skipping %s", exc)
                self._sent_checkpoints.add(index)
                continue
            self.widget.add_checkpoint(checkpoint)
            self._sent_checkpoints.add(index)
            if index == max(self._sent_checkpoints):
                self._latest_epoch = checkpoint.epoch
            sent += 1
        for method in self.methods:
            for index in self.store.frame_indices(method):
                key = (method, index)
                if key in self._sent_frames or index not in self._sent_checkpoints:
                    continue
                try:
                    frame = self.store.frame(method, index)
                except RunFormatError as exc:
                    log.warning("live view: skipping %s", exc)
                    self._sent_frames.add(key)
                    continue
                self.widget.add_frame(frame)
                self._sent_frames.add(key)
                sent += 1
                if self._on_frame is not None:
                    self._on_frame(frame)
        self.widget.set_status(self._status())
        return sent

    def start(self) -> None:
        """Look once now, then on a daemon thread until :meth:`stop`."""
        self.poll()
        self._thread = threading.Thread(target=self._run, name="sentrycam-live", daemon=True)
        self._thread.start()

    def sync(self) -> None:
        """Wait until a look that began after this call has ended (at once when stopped)."""
        with self._cond:
            target = self._begun + 1
            self._wanted = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._ended >= target or not self.following)

    def stop(self) -> None:
        """Stop following (the widget keeps what it has and shows the run as done)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        self.widget.set_status({**self._status(), "closed": True})

    @property
    def following(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping or self._wanted, self.interval)
                    if self._stopping:
                        return
                    self._wanted = False
                    self._begun += 1
                try:
                    self.poll()
                except (OSError, RunFormatError) as exc:  # storage hiccup: shown, retried
                    self.error = exc
                    error = f"{type(exc).__name__}: {exc}"
                    self.widget.set_status({**self._status(), "error": error})
                with self._cond:
                    self._ended += 1
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._stopping = True
                self._cond.notify_all()

    def _status(self) -> dict[str, Any]:
        waiting = sum(
            1
            for m in self.methods
            for i in self._sent_checkpoints
            if (m, i) not in self._sent_frames
        )
        status: dict[str, Any] = {
            "latest_epoch": self._latest_epoch,
            "queued": waiting,
            "closed": False,
        }
        if self._extra_status is not None:
            status.update(self._extra_status())
        return status


def _has_inverse(store: RunStore, method: str) -> bool:
    """Whether ``method`` draws a background: from its stored frames, else its projector."""
    indices = store.frame_indices(method)
    if indices:
        try:
            return store.frame(method, indices[-1]).background is not None
        except RunFormatError:
            pass
    if method in available_methods():
        return bool(make_projector(method).has_inverse)
    return False
