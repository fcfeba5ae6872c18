"""The process worker's child: projects a live run's checkpoints as the training process stores them.

:class:`~sentrycam_widget.monitor_process.ProcessMonitor` starts
``python -m sentrycam_widget.monitor_child RUN --methods JSON ...`` with ``subprocess`` (a fresh
interpreter, never a fork of a process that runs torch threads). The child first lowers the
priority of each of its threads by ``--nice``, or with ``--idle`` puts them under Linux's
``SCHED_IDLE`` policy (before torch or numba start threads of their own; later threads inherit
it), caps torch's and numba's threads at ``--threads``, takes the
run's lease for each method and then, as ``watch`` does (:mod:`sentrycam_widget.watch`, the same
follower), projects every stored checkpoint that has no frame yet, in order, continuing its
projectors (resumed from the stored frames when the run already has some). One
:class:`~sentrycam_widget.alerts.AlertEngine` per method sees each checkpoint from ``--first``
on; its alerts, and with ``--early-after`` the step-cadence early alerts raised since the last
checkpoint (``RUN/early_alerts.json``, steps after that one), are stored with the frame, as the
thread worker stores them.

Protocol on the pipes: a stdin line ``sync N`` is answered by the stdout line ``synced N`` once a
whole pass over the run that began after the request has ended; the end of stdin means no
more checkpoints will come: the child projects what is left and exits with 0. Anything else
the child prints goes to stderr; an error ends it with the traceback on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

POLL_SECONDS = 0.25


def main(argv: list[str] | None = None) -> int:
    """Run the child (see the module doc); returns the exit code."""
    args = _parser().parse_args(argv)
    lower_every_thread(args.nice, idle=args.idle)
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stdout carries only the protocol; stray prints land on stderr
    requests = _Requests(sys.stdin)

    from .lease import acquire
    from .monitor_threads import enter_worker
    from .pacing import Pacer
    from .projection import graph
    from .store import RunStore
    from .watch import _Follower

    enter_worker(0, args.threads, Pacer(1.0))
    options: dict[str, dict[str, Any]] = json.loads(args.methods)
    store = RunStore.open(args.run)
    alerts = _FrameAlerts(store, args.first, args.early_after)
    followers: dict[str, _Follower] = {}
    try:
        for method in options:
            lease = acquire(args.run, method)
            lease.start_heartbeat()
            followers[method] = _Follower(args.run, store, lease, annotate=alerts.attach_to(method))
        graph.warm_up(store.n_points)
        while True:
            syncs, closing = requests.take()
            done = sum(
                follower.project_new(method, None, _quiet, options[method])
                for method, follower in followers.items()
            )
            for number in syncs:
                protocol.write(f"synced {number}\n")
            if closing and not done:
                return 0
            if not done:
                requests.wait(POLL_SECONDS)
    finally:
        for follower in followers.values():
            follower.lease.release()


def lower_every_thread(nice: int, *, idle: bool = False) -> None:
    """Raise the nice value of each thread of this process by ``nice`` (Linux: per thread;
    threads started later inherit their starter's value); with ``idle``, put each under
    ``SCHED_IDLE`` instead (a core only when no other thread wants it)."""
    if (nice <= 0 and not idle) or not hasattr(os, "setpriority"):
        return
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:  # no /proc: the calling thread (the process, where nice is per process)
        threads = [0]
    for tid in threads:
        try:
            if idle:
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
            else:
                current = os.getpriority(os.PRIO_PROCESS, tid)
                os.setpriority(os.PRIO_PROCESS, tid, min(19, current + nice))
        except (OSError, AttributeError) as exc:  # AttributeError: no SCHED_IDLE here
            print(f"could not lower the priority of thread {tid}: {exc}", file=sys.stderr)


class _Requests:
    """The parent's requests, read from stdin on a daemon thread: syncs, and the end."""

    def __init__(self, stream: IO[str]) -> None:
        self._cond = threading.Condition()
        self._syncs: list[int] = []
        self._closed = False
        threading.Thread(target=self._read, args=(stream,), name="requests", daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            words = line.split()
            if len(words) == 2 and words[0] == "sync" and words[1].isdigit():
                with self._cond:
                    self._syncs.append(int(words[1]))
                    self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self) -> tuple[list[int], bool]:
        """The syncs asked for so far (each answered once) and whether stdin has ended."""
        with self._cond:
            syncs, self._syncs = self._syncs, []
            return syncs, self._closed

    def wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``, less when a request or the end arrives."""
        with self._cond:
            self._cond.wait_for(lambda: self._syncs or self._closed, seconds)


class _FrameAlerts:
    """Per method: the alert engine over this session's checkpoints and the early alerts due."""

    def __init__(self, store: Any, first: int, early_after: int | None) -> None:
        self._store = store
        self._first = first
        self._early_after = early_after

    def attach_to(self, method: str) -> Callable[[Any, Any], None]:
        """The follower's annotate hook for ``method``: adds the alerts to each new frame."""
        from .alerts import AlertEngine

        engine = AlertEngine()
        given: set[tuple[Any, ...]] = set()

        def attach(checkpoint: Any, frame: Any) -> None:
            if checkpoint.index < self._first:  # a resumed run's backfill: alerts start afresh
                return
            raised = engine.update(checkpoint, frame)
            early = self._early(given, frame.index)
            frame.alerts.extend(alert.to_dict() for alert in [*raised, *early])

        return attach

    def _early(self, given: set[tuple[Any, ...]], index: int) -> list[Any]:
        """Early alerts of this session raised before checkpoint ``index``, not yet given."""
        if self._early_after is None:
            return []
        from .monitor_early import load_early_alerts

        due = []
        for alert in load_early_alerts(self._store):
            key = (alert.step, alert.signal, alert.checkpoint, alert.class_index)
            step = -1 if alert.step is None else alert.step
            if alert.checkpoint < index and step > self._early_after and key not in given:
                given.add(key)
                due.append(alert)
        return due


def _quiet(_line: str) -> None:
    """The follower's progress lines are not printed (stderr is kept for errors)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sentrycam_widget.monitor_child")
    parser.add_argument("run", help="the run directory (path or URL)")
    parser.add_argument("--methods", required=True, help='JSON: {"method": {options}, ...}')
    parser.add_argument("--threads", type=int, default=1, help="torch and numba threads")
    parser.add_argument("--nice", type=int, default=10, help="added to each thread's nice value")
    parser.add_argument("--idle", action="store_true", help="SCHED_IDLE instead of --nice")
    parser.add_argument("--first", type=int, default=0, help="first checkpoint of this session")
    parser.add_argument(
        "--early-after", type=int, default=None, help="attach early alerts after this step"
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
