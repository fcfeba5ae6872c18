"""Where a run directory lives: a local path or an fsspec URL, and its whole-file operations.

The store, the watcher's lease and the exports name files by keys relative to the run's root
(``"checkpoints/000003.npz"``) and never see which storage is behind them:

- :class:`LocalDir` (plain paths and ``file://`` URLs): a write goes to a hidden temporary
  file in the same directory, is flushed, fsynced and renamed over its final name, then the
  directory is fsynced; an exclusive create writes a temporary file and hard-links it, so the
  final name appears complete or not at all.
- :class:`RemoteDir` (any other fsspec URL: ``s3://``, ``gs://``, ``memory://``...): a write is
  one whole-object PUT of the finished bytes, so a reader sees the old object or the new one,
  never a part; an exclusive create is a conditional PUT (``If-None-Match: *`` on S3).
  Listings bypass fsspec's directory cache, so a follower sees objects another machine wrote.

Use :func:`run_dir` to get the right one for a location.
"""

from __future__ import annotations

import abc
import contextlib
import glob as globlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from ._atomic_io import atomic_write, fsync_dir, write_temp
from .errors import InputError

Writer = Callable[[BinaryIO], None]


class RunDir(abc.ABC):
    """A directory of whole files, addressed by ``/``-separated keys relative to its root."""

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """The root as the user would write it (a path or a URL)."""

    @abc.abstractmethod
    def describe(self, key: str) -> str:
        """Where ``key`` lives, for messages (a path or a URL)."""

    @abc.abstractmethod
    def where(self, key: str) -> Path | str:
        """Where ``key`` lives, as a :class:`~pathlib.Path` on disk or else a URL."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a file (or a non-empty directory) is stored under ``key``."""

    @abc.abstractmethod
    def list(self, key: str = "") -> list[str]:
        """Names directly under the directory ``key`` (files and subdirectories); [] if none."""

    @abc.abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The whole file; FileNotFoundError if it is not there."""

    @abc.abstractmethod
    def write(self, key: str, write: Writer) -> None:
        """Write a whole file atomically: readers see the old content or the new, never a part."""

    @abc.abstractmethod
    def create_exclusive(self, key: str, write: Writer) -> bool:
        """Write a whole file only if ``key`` does not exist yet; False when another write won.

        The check and the publish are one step (a hard link on disk, a conditional PUT on an
        object store), so of two writers racing for the same key exactly one succeeds.
        """

    @abc.abstractmethod
    def remove(self, key: str) -> None:
        """Delete a file (missing is fine)."""

    def is_empty(self) -> bool:
        """True when nothing is stored under the root."""
        return not self.list()

    def open(self, key: str) -> BinaryIO:
        """A seekable in-memory copy of the file (np.load and torch.load read from it)."""
        return io.BytesIO(self.read_bytes(key))

    def write_bytes(self, key: str, data: bytes) -> None:
        """:meth:`write` of ready bytes."""
        self.write(key, lambda handle: handle.write(data))


class LocalDir(RunDir):
    """A run directory on a local (or mounted) file system."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def location(self) -> str:
        return str(self.root)

    def path(self, key: str) -> Path:
        """The local path of ``key``."""
        return self.root / key if key else self.root

    def describe(self, key: str) -> str:
        return str(self.path(key))

    def where(self, key: str) -> Path:
        return self.path(key)

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def list(self, key: str = "") -> list[str]:
        try:
            return os.listdir(self.path(key))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def write(self, key: str, write: Writer) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, write)

    def create_exclusive(self, key: str, write: Writer) -> bool:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = write_temp(path, write)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(path.parent)
        return True

    def remove(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"LocalDir({self.location!r})"


class RemoteDir(RunDir):
    """A run directory on an fsspec file system (object stores: one object per file)."""

    def __init__(self, url: str, **storage_options: Any) -> None:
        fsspec = _fsspec()
        try:
            self.fs, root = fsspec.core.url_to_fs(url, **storage_options)
        except (ImportError, ValueError) as exc:
            raise InputError(f"cannot open {url}: {exc}") from exc
        self.root = root.rstrip("/")
        self._url = url.rstrip("/")

    @property
    def location(self) -> str:
        return self._url

    def _full(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def describe(self, key: str) -> str:
        return f"{self._url}/{key}" if key else self._url

    def where(self, key: str) -> str:
        return self.describe(key)

    def exists(self, key: str) -> bool:
        full = self._full(key)
        self.fs.invalidate_cache(full)
        return bool(self.fs.exists(full))

    def list(self, key: str = "") -> list[str]:
        full = self._full(key)
        self.fs.invalidate_cache(full)
        try:
            entries = self.fs.ls(full, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        names = (str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in entries)
        return [name for name in names if name]

    def read_bytes(self, key: str) -> bytes:
        return self.fs.cat_file(self._full(key))

    def write(self, key: str, write: Writer) -> None:
        buffer = io.BytesIO()
        write(buffer)
        self.fs.pipe_file(self._full(key), buffer.getvalue())

    def create_exclusive(self, key: str, write: Writer) -> bool:
        full = self._full(key)
        buffer = io.BytesIO()
        write(buffer)
        try:
            self.fs.pipe_file(full, buffer.getvalue(), mode="create")
        except FileExistsError:
            return False
        except OSError as exc:  # S3 answers 412 Precondition Failed when the key exists
            if "PreconditionFailed" in str(exc) or "412" in str(exc):
                return False
            raise
        return True

    def remove(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._full(key))

    def __repr__(self) -> str:
        return f"RemoteDir({self.location!r})"


def is_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` is a URL (``scheme://...``) rather than a local path."""
    return isinstance(location, str) and "://" in location


def run_dir(location: str | os.PathLike[str] | RunDir) -> RunDir:
    """The :class:`RunDir` for a local path, a ``file://`` URL or any other fsspec URL.

    Parameters
    ----------
    location
        A path, a URL such as ``s3://bucket/runs/a`` or ``memory://runs/a``, or a RunDir.

    Returns
    -------
    RunDir
        :class:`LocalDir` for paths and ``file://``, :class:`RemoteDir` otherwise.
    """
    if isinstance(location, RunDir):
        return location
    if not is_url(location):
        return LocalDir(location)
    text = str(location)
    if text.startswith("file://"):
        return LocalDir(text[len("file://") :])
    return RemoteDir(text)


def has_glob(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` is a pattern (``*``, ``?`` or ``[``) rather than one place."""
    return any(char in str(location) for char in "*?[")


def expand(pattern: str | os.PathLike[str]) -> list[str]:
    """The locations a glob pattern matches, sorted: paths locally, URLs for URL patterns.

    Parameters
    ----------
    pattern
        A local glob (``runs/sweep-*``) or a URL glob (``s3://bucket/sweep/*``).

    Returns
    -------
    list of str
        Matching locations in the same form as the pattern.
    """
    text = str(pattern)
    if not is_url(text) or text.startswith("file://"):
        local = text[len("file://") :] if text.startswith("file://") else text
        return sorted(globlib.glob(local))
    fs, root = _fsspec().core.url_to_fs(text)
    fs.invalidate_cache()
    return sorted(fs.unstrip_protocol(match) for match in fs.glob(root))


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError as exc:
        raise InputError(
            "run directories given as URLs need fsspec (and s3fs for s3://): "
            "pip install 'sentrycam-widget[remote]'"
        ) from exc
    return fsspec
