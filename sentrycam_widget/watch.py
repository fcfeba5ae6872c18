"""Following runs that other processes write: project each checkpoint as it lands, resumably.

The training job records (``Monitor(..., methods=())`` or any writer of the run format); a
watcher elsewhere, on a GPU box or a laptop, runs :func:`watch` on the run directory (a path,
a URL, several of them, or a glob over a sweep). Each poll it projects, in order, every stored
checkpoint that has no frame of the method yet, continuing its projector while checkpoints
arrive in sequence and resuming from the stored frames otherwise — so a restarted watcher
carries on where the last one stopped. It holds the run's :mod:`~sentrycam_widget.lease` for
the method, so two watchers never write the same frames. A writer that dies mid-run leaves only
complete entries behind: the watcher projects them and waits for more (``until_idle`` ends it
once nothing new has landed for that many seconds).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError, RunFormatError
from .filesystem import expand, has_glob, run_dir
from .lease import DEFAULT_TTL, Lease, LeaseLostError, RunBusyError, acquire
from .pipeline import progress_line, project_checkpoint, readable_checkpoint, resumed_projector
from .projection.base import Projector
from .records import Checkpoint, Frame
from .store import RunStore

Say = Callable[[str], None]


@dataclass
class _Follower:
    """One followed run: its store, its lease and the projector that continues it."""

    location: str
    store: RunStore
    lease: Lease
    projector: Projector | None = None
    last: int | None = None
    unreadable: set[int] = field(default_factory=set)
    annotate: Callable[[Checkpoint, Frame], None] | None = None  # e.g. attach alerts

    def project_new(
        self, method: str, threads: int | None, say: Say, options: dict[str, Any]
    ) -> int:
        """Project every checkpoint without a frame yet, in order; returns how many."""
        done = set(self.store.frame_indices(method))
        count = 0
        for index in self.store.missing_frames(method):
            if index in self.unreadable:
                continue
            prior = max((i for i in done if i < index), default=None)
            if self.projector is None or prior is None or prior != self.last:
                self.projector = resumed_projector(self.store, method, index, **options)
            checkpoint = readable_checkpoint(self.store, index)
            if checkpoint is None:
                self.unreadable.add(index)
                self.projector = None
                continue
            self.lease.check()
            frame = project_checkpoint(
                self.projector,
                checkpoint,
                self.store,
                annotate=functools.partial(self._keep, checkpoint),
                threads=threads,
            )
            done.add(index)
            self.last = index
            count += 1
            say(f"{self.location}: {progress_line(frame)}")
        return count

    def _keep(self, checkpoint: Checkpoint, frame: Frame) -> None:
        """Just before ``frame`` is stored: still the lease holder? then annotate it."""
        self.lease.check()
        if self.annotate is not None:
            self.annotate(checkpoint, frame)


def watch(
    sources: Sequence[str | os.PathLike[str]],
    method: str = "sentrycam",
    *,
    until_idle: float | None = None,
    wait: bool = False,
    max_runs: int | None = None,
    poll: float = 1.0,
    lease_ttl: float = DEFAULT_TTL,
    threads: int | None = 1,
    say: Say = print,
    **projector_options: Any,
) -> dict[str, int]:
    """Follow runs being written elsewhere and project each checkpoint as it lands.

    Parameters
    ----------
    sources
        Run directories (paths or URLs) and globs over them; globs are re-read every poll, so
        runs a sweep starts later are picked up. A named run that does not exist yet is waited
        for.
    method
        The projection method.
    until_idle
        Stop once no checkpoint was projected for this many seconds (None: follow until
        interrupted).
    wait
        When another watcher holds a run's lease, wait for it to end (or expire) instead of
        failing with :class:`~sentrycam_widget.lease.RunBusyError`.
    max_runs
        Hold at most this many runs at once (None: all). Watchers on several machines given the
        same glob then share a sweep through the leases, each taking runs nobody holds.
    poll
        Seconds between looks at the runs when there was nothing to project.
    lease_ttl
        Seconds a lease stays valid without renewal (a dead watcher's runs are free after it).
    threads
        torch intra-op threads while projecting (see ``project_checkpoint``).
    say
        Called with one line per event (a frame projected, a run found, a run busy).
    **projector_options
        Passed to the projectors (e.g. ``seed``).

    Returns
    -------
    dict
        Frames written per run location.

    Raises
    ------
    RunBusyError
        When every run found is held by another watcher and ``wait`` is False.
    """
    if not sources:
        raise InputError("watch needs at least one run directory or glob")
    if until_idle is not None and until_idle < 0:
        raise InputError(f"until_idle must be >= 0 seconds, got {until_idle}")
    if poll <= 0 or lease_ttl <= 0:
        raise InputError("poll and lease_ttl must be positive seconds")
    if max_runs is not None and max_runs < 1:
        raise InputError(f"max_runs must be >= 1, got {max_runs}")
    followers: dict[str, _Follower] = {}
    written: dict[str, int] = {}
    told: set[tuple[str, str]] = set()

    def tell(location: str, what: str, line: str) -> None:
        if (location, what) not in told:
            told.add((location, what))
            say(line)

    last_progress = time.monotonic()
    try:
        while True:
            busy: list[RunBusyError] = []
            progressed = 0
            for location in _locations(sources):
                follower = followers.get(location)
                if follower is None:
                    if max_runs is not None and len(followers) >= max_runs:
                        continue
                    follower = _follow(location, method, lease_ttl, busy, tell, wait)
                    if follower is None:
                        continue
                    followers[location] = follower
                    written.setdefault(location, 0)
                    say(f"watching {location} ({method})")
                try:
                    count = follower.project_new(method, threads, say, projector_options)
                except LeaseLostError as exc:
                    say(f"{location}: {exc}; no longer projecting it")
                    del followers[location]
                    told.discard((location, "busy"))
                    continue
                written[location] += count
                progressed += count
            if busy and not followers and not wait:
                more = f" (and {len(busy) - 1} more run(s) like it)" if len(busy) > 1 else ""
                raise RunBusyError(f"{busy[0]}{more}")
            now = time.monotonic()
            if progressed:
                last_progress = now
            elif until_idle is not None and now - last_progress >= until_idle:
                return written
            else:
                time.sleep(poll)
    finally:
        for follower in followers.values():
            follower.lease.release()


def _locations(sources: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Named runs as given, globs expanded (each location once, in the order first seen)."""
    found: dict[str, None] = {}
    for source in sources:
        matches = expand(source) if has_glob(source) else [str(source)]
        for location in matches:
            found.setdefault(location, None)
    return list(found)


def _follow(
    location: str,
    method: str,
    lease_ttl: float,
    busy: list[RunBusyError],
    tell: Callable[[str, str, str], None],
    wait: bool,
) -> _Follower | None:
    """Open the run and take its lease; None (and a note, once) when it is not ready or busy."""
    directory = run_dir(location)
    if not directory.exists("manifest.json"):
        tell(location, "absent", f"waiting for {location} to become a run (no manifest yet)")
        return None
    try:
        store = RunStore.open(location)
    except RunFormatError as exc:
        tell(location, "unreadable", f"skipping {location}: {exc}")
        return None
    try:
        lease = acquire(directory, method, ttl=lease_ttl)
    except RunBusyError as exc:
        busy.append(exc)
        tell(location, "busy", f"{exc}" + ("; waiting" if wait else ""))
        return None
    lease.start_heartbeat()
    return _Follower(location, store, lease)
