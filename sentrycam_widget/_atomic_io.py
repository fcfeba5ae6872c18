"""Atomic file writes (temp file, fsync, rename or create-exclusive link) and stale-temp cleanup."""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40] or "host"
# ".<final name>.<host>-<pid>-<random>.tmp"; files of older versions lack the host
_TEMP = re.compile(r"^\..+?\.(?:(?P<host>[A-Za-z0-9_]+)-)?(?P<pid>\d+)-[0-9a-f]{8}\.tmp$")
_FOREIGN_TEMP_AGE_S = 24 * 3600


def atomic_write(path: Path, write: Callable[[BinaryIO], None], *, exclusive: bool = False) -> None:
    """Write via a hidden temp file in the same directory, fsync, publish, fsync the directory.

    Parameters
    ----------
    path : Path
        The final name.
    write : callable
        Writes the content to the open binary file it is given.
    exclusive : bool
        Publish with ``os.link`` (create-exclusive: ``FileExistsError`` if ``path`` exists, also
        when two writers race) instead of replacing whatever is there with ``os.replace``.
    """
    tmp = write_temp(path, write)
    try:
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if exclusive:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def write_temp(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write a hidden, fsynced temp file beside ``path`` (``.name.<host>-<pid>-<random>.tmp``)."""
    tmp = path.parent / f".{path.name}.{writer_token()}.tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def writer_token() -> str:
    """``<host>-<pid>-<random>``: names a file as this writer's (see :func:`remove_stale_temps`)."""
    return f"{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temps(directory: Path) -> list[Path]:
    """Delete the temp files in ``directory`` left by writers that were killed.

    A temp file is stale when its writer (host and pid are in its name) was a process of this
    host that no longer runs, or, for another host's writer, when it is over a day old.

    Parameters
    ----------
    directory : Path
        A directory of a run.

    Returns
    -------
    list of Path
        The files removed (none when the directory cannot be written).
    """
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    removed = []
    for name in names:
        match = _TEMP.match(name)
        if match is None or not _is_stale(directory / name, match):
            continue
        try:
            (directory / name).unlink()
        except OSError:
            continue
        removed.append(directory / name)
    return removed


def writer_is_gone(host: str | None, pid: int) -> bool:
    """Whether the writer ``host``/``pid`` is a process of this host that no longer runs."""
    if host not in (None, _HOST) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _is_stale(path: Path, match: re.Match[str]) -> bool:
    if match["host"] not in (None, _HOST):
        try:
            return time.time() - path.stat().st_mtime > _FOREIGN_TEMP_AGE_S
        except OSError:
            return False
    return writer_is_gone(match["host"], int(match["pid"]))
