"""The monitor's thread plumbing: its bounded checkpoint queue, GIL switch interval and priority.

Skipped checkpoints live in the run directory, not in memory: the worker stores each one as it
announces it and reloads it (one at a time) to backfill, and when more than ``queue_size``
skipped checkpoints still wait in memory, :meth:`CheckpointQueue.put` hands the oldest back for
the training thread to store. So a monitor holds at most ``2 × queue_size`` captured
checkpoints however far projection falls behind.

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

import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import torch

from .pacing import Pacer, install
from .records import Checkpoint

log = logging.getLogger("sentrycam_widget")


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


GIL_SWITCH = _GilSwitchInterval()


@dataclass
class CheckpointQueue:
    """Checkpoints waiting for the worker: bounded, newest wins, overflow kept for backfill.

    ``skipped`` maps each skipped checkpoint's index to the checkpoint while it is held in
    memory, or to None once it is stored in the run directory (reload it from there).
    """

    size: int
    pending: list[Checkpoint] = field(default_factory=list)
    skipped: dict[int, Checkpoint | None] = field(default_factory=dict)
    closing: bool = False
    busy: bool = False
    cond: threading.Condition = field(default_factory=threading.Condition)

    def put(self, checkpoint: Checkpoint) -> Checkpoint | None:
        """Queue ``checkpoint``; returns a skipped checkpoint to store now, if more than
        ``size`` of them are held in memory (the caller stores it and calls :meth:`stored`)."""
        with self.cond:
            if len(self.pending) >= self.size:
                oldest = self.pending.pop(0)
                self.skipped[oldest.index] = oldest
            self.pending.append(checkpoint)
            self.cond.notify_all()
            held = [i for i, c in self.skipped.items() if c is not None]
            return self.skipped[min(held)] if len(held) > self.size else None

    def in_memory(self) -> list[Checkpoint]:
        """The queued and skipped checkpoints held in memory, in index order."""
        with self.cond:
            held = [*self.pending, *(c for c in self.skipped.values() if c is not None)]
        return sorted(held, key=lambda checkpoint: checkpoint.index)

    def stored(self, index: int) -> None:
        """Checkpoint ``index`` is in the run directory: drop it from memory if it is skipped."""
        with self.cond:
            if self.skipped.get(index) is not None:
                self.skipped[index] = None

    def take(self) -> tuple[str, list[Any]] | None:
        """Next job: ``("live", [ckpt])`` first, else ``("backfill", gap indices)``; None once
        closed."""
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

    def _first_gap(self) -> list[int]:
        indices = sorted(self.skipped)
        gap = [indices[0]]
        for i in indices[1:]:
            if i != gap[-1] + 1:
                break
            gap.append(i)
        for i in gap:
            del self.skipped[i]
        return gap

    def close(self) -> None:
        """No more checkpoints: :meth:`take` returns None once the work left is done."""
        with self.cond:
            self.closing = True
            self.cond.notify_all()

    def wait_idle(self) -> None:
        with self.cond:
            self.cond.wait_for(lambda: not self.pending and not self.skipped and not self.busy)

    def counts(self) -> tuple[int, int]:
        with self.cond:
            return len(self.pending), len(self.skipped)


def enter_worker(nice: int, threads: int, pacer: Pacer) -> None:
    """Settings of the calling (worker) thread: its nice value, torch and numba threads (numba's
    count is per thread: NN-descent is numba-parallel and would otherwise take every core) and
    pacer."""
    import numba

    lower_priority(nice)
    torch.set_num_threads(threads)
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    install(pacer)


def lower_priority(nice: int) -> None:
    """Raise this thread's nice value (Linux: per thread) so training keeps the CPU first."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as exc:
        log.info("could not lower the sentrycam worker's priority: %s", exc)
