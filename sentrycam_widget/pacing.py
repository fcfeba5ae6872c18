"""The monitor worker's share of the interpreter while the training thread is busy.

A projecting worker thread and the training loop share one GIL. Whenever both want it, the
training thread waits at each of its torch ops (every op releases the GIL and takes it back)
until the worker lets go — at its own next op, or after Python's switch interval — so a
Python-heavy loop (Lightning's hooks, logging and closures around every step) may slow down.
Pacing is opt-in (``Monitor(worker_share=...)``, default 1): on the quiet machine it did not
measurably change the Lightning benchmark's slowdown (README, "The Lightning callback").

:class:`Pacer` bounds that share. The engine calls :func:`pause` at its step and stage
boundaries (a no-op on threads without a pacer, e.g. the ``project`` command); on the monitor's
worker it rests — sleeping, so it does not hold or ask for the GIL — for ``(1 - share) / share``
times the CPU time it used since its last rest, whenever the training thread used CPU in that
time. When training is idle (between fits, a notebook waiting for input, the monitor draining
at ``close``) the worker runs at full speed; a rest ends early once training goes idle.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .errors import InputError

_LOCAL = threading.local()


class Pacer:
    """Rests the calling thread so it uses at most ``share`` of the time training is busy.

    Parameters
    ----------
    share
        The fraction of wall time, in (0, 1], the worker may run while training is busy
        (1: never rest).
    training
        The training thread's ``threading.get_ident()`` (or later, :meth:`watch`).
    chores
        Called at the start of each rest (the monitor stores the checkpoints it holds only in
        memory, so the training thread need not and a crash loses none of them).
    burst
        CPU seconds the worker runs before it considers resting.
    """

    BUSY_FRACTION = 0.1  # training is busy when it used this share of a core meanwhile
    SLICE = 0.01  # a rest is taken in slices of this many seconds, each ending if training idles

    def __init__(
        self,
        share: float,
        training: int | None = None,
        chores: Callable[[], None] | None = None,
        burst: float = 0.005,
    ) -> None:
        if not 0.0 < share <= 1.0:
            raise InputError(f"the worker's share must be in (0, 1], got {share}")
        self.share = float(share)
        self.burst = float(burst)
        self._training = training
        self._chores = chores
        self._mark: tuple[float, float, float] | None = None  # taken on the paced thread
        self.rested = 0.0

    def watch(self, thread_id: int) -> None:
        """Pace against this thread (``threading.get_ident()`` of the training thread); may be
        called from any thread."""
        if thread_id != self._training:
            self._training = thread_id
            self._mark = None

    def pause(self) -> None:
        """Rest now if this (the paced) thread has run ``burst`` CPU seconds since its last
        rest and training was busy meanwhile."""
        if self.share >= 1.0:
            return
        now, mark = self._now(), self._mark
        if mark is None:
            self._mark = now
            return
        used = now[1] - mark[1]
        if used < self.burst:
            return
        if self._busy(now, mark):
            if self._chores is not None:
                self._chores()
            self._rest(used * (1.0 - self.share) / self.share)
        self._mark = self._now()

    def _rest(self, seconds: float) -> None:
        before = self._now()
        end = before[0] + seconds
        while (left := end - before[0]) > 0:
            self._sleep(min(self.SLICE, left))
            after = self._now()
            self.rested += after[0] - before[0]
            if not self._busy(after, before):
                return
            before = after

    @staticmethod
    def _sleep(seconds: float) -> None:
        time.sleep(seconds)

    def _busy(self, now: tuple[float, float, float], then: tuple[float, float, float]) -> bool:
        wall = now[0] - then[0]
        return wall > 0 and (now[2] - then[2]) >= self.BUSY_FRACTION * wall

    def _now(self) -> tuple[float, float, float]:
        """(wall clock, this thread's CPU time, the training thread's CPU time or 0)."""
        return time.perf_counter(), time.thread_time(), self._training_cpu()

    def _training_cpu(self) -> float:
        if self._training is None:
            return 0.0
        try:
            return time.clock_gettime(time.pthread_getcpuclockid(self._training))
        except (OSError, AttributeError):  # the thread ended, or no per-thread clocks here
            return 0.0


def install(pacer: Pacer | None) -> None:
    """Make ``pacer`` the calling thread's (None: no pacing on this thread)."""
    _LOCAL.pacer = pacer


def pause() -> None:
    """A point where the engine may rest if the calling thread has a :class:`Pacer`."""
    pacer = getattr(_LOCAL, "pacer", None)
    if pacer is not None:
        pacer.pause()
