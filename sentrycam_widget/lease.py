"""Who may write a method's frames of a run: a lease that watchers take, renew and respect.

Two watchers projecting the same run with the same method would write the same frames. Before
projecting, a watcher takes the lease ``RUN/leases/<method>/<generation>.json`` (holder, host,
pid, expiry time, released flag). The newest generation is the lease in force. Taking it means
creating the next generation with an exclusive create (a hard link on disk, a conditional PUT
on an object store), so of two watchers racing for a free lease exactly one wins. The holder
renews the expiry from a heartbeat thread every ``ttl / 3`` seconds and checks, before storing
each frame, that no newer generation exists; a watcher that dies stops renewing, and once its
lease expires (``ttl`` seconds, default 30) another watcher may take over. A clean exit marks
the lease released, so the next watcher need not wait.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .errors import SentryCamError
from .filesystem import RunDir, run_dir

_GENERATION = re.compile(r"^(\d{8})\.json$")
DEFAULT_TTL = 30.0


class RunBusyError(SentryCamError):
    """Another live watcher holds the lease on this run and method."""


class LeaseLostError(SentryCamError):
    """This watcher's lease was taken over (it was not renewed in time); stop writing."""


@dataclass
class Lease:
    """A held lease; :meth:`check` before each write, :meth:`release` when done."""

    directory: RunDir
    method: str
    generation: int
    holder: str
    ttl: float
    _lost: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def key(self) -> str:
        return _key(self.method, self.generation)

    def renew(self) -> None:
        """Push the expiry ``ttl`` seconds ahead; LeaseLostError if a newer lease exists."""
        self.check()
        self.directory.write_bytes(self.key, _record(self.holder, self.ttl, released=False))

    def check(self, *_: Any) -> None:
        """Raise :class:`LeaseLostError` if this lease is no longer the one in force."""
        if self._lost is None:
            newest = _generations(self.directory, self.method)
            if newest and newest[-1] > self.generation:
                theirs = _read(self.directory, self.method, newest[-1]) or {}
                self._lost = (
                    f"the lease on {self.directory.location} ({self.method}) was taken over by "
                    f"{theirs.get('holder', 'another watcher')} after this one was not renewed "
                    f"for {self.ttl:g} s"
                )
        if self._lost is not None:
            raise LeaseLostError(self._lost)

    def start_heartbeat(self) -> None:
        """Renew every ``ttl / 3`` seconds on a daemon thread until :meth:`release`."""

        def beat() -> None:
            while not self._stop.wait(self.ttl / 3):
                try:
                    self.renew()
                except LeaseLostError:
                    return
                except OSError:  # a storage hiccup: the next beat tries again
                    continue

        self._thread = threading.Thread(target=beat, name="sentrycam-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop renewing and mark the lease released (unless it was already taken over)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._lost is None:
            with contextlib.suppress(LeaseLostError, OSError):
                self.check()
                self.directory.write_bytes(self.key, _record(self.holder, 0.0, released=True))


def acquire(
    location: str | os.PathLike[str] | RunDir, method: str, *, ttl: float = DEFAULT_TTL
) -> Lease:
    """Take the lease on ``method``'s frames of the run at ``location``.

    Parameters
    ----------
    location
        The run directory (path, URL or RunDir).
    method
        The projection method whose frames the caller will write.
    ttl
        Seconds the lease stays valid without renewal.

    Returns
    -------
    Lease
        The held lease (its heartbeat not started).

    Raises
    ------
    RunBusyError
        When another watcher holds a lease that has neither expired nor been released.
    """
    directory = run_dir(location)
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    generations = _generations(directory, method)
    if generations:
        current = _read(directory, method, generations[-1])
        if current is not None and _alive(current):
            raise RunBusyError(_busy_message(directory, method, current))
    generation = generations[-1] + 1 if generations else 0
    record = _record(holder, ttl, released=False)
    if not directory.create_exclusive(_key(method, generation), lambda f: f.write(record)):
        winner = _read(directory, method, generation) or {}
        raise RunBusyError(_busy_message(directory, method, winner))
    for old in generations[:-1]:
        directory.remove(_key(method, old))
    return Lease(directory, method, generation, holder, float(ttl))


def holder_of(location: str | os.PathLike[str] | RunDir, method: str) -> dict[str, Any] | None:
    """The live lease record on ``method`` of a run, or None when nobody holds it."""
    directory = run_dir(location)
    generations = _generations(directory, method)
    if not generations:
        return None
    current = _read(directory, method, generations[-1])
    return current if current is not None and _alive(current) else None


def _key(method: str, generation: int) -> str:
    return f"leases/{method}/{generation:08d}.json"


def _generations(directory: RunDir, method: str) -> list[int]:
    names = directory.list(f"leases/{method}")
    return sorted(int(m.group(1)) for m in map(_GENERATION.match, names) if m)


def _record(holder: str, ttl: float, *, released: bool) -> bytes:
    host, pid, _ = holder.rsplit(":", 2)
    record = {
        "holder": holder,
        "host": host,
        "pid": int(pid),
        "expires": time.time() + ttl,
        "released": released,
    }
    return json.dumps(record).encode("utf-8")


def _read(directory: RunDir, method: str, generation: int) -> dict[str, Any] | None:
    try:
        record = json.loads(directory.read_bytes(_key(method, generation)))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _alive(record: dict[str, Any]) -> bool:
    expires = record.get("expires")
    return not record.get("released") and isinstance(expires, float) and expires > time.time()


def _busy_message(directory: RunDir, method: str, record: dict[str, Any]) -> str:
    left = max(0.0, float(record.get("expires", 0.0)) - time.time())
    return (
        f"{directory.location} is already being projected with {method} by "
        f"{record.get('holder', 'another watcher')} (its lease runs {left:.0f} s more unless "
        "renewed); use --wait to take over when it stops"
    )
