"""Exceptions raised by sentrycam_widget.

Every error names the offending thing (argument, layer, file) so that a user can fix it without
reading our source.
"""

from __future__ import annotations


class SentryCamError(Exception):
    """Base class of every error this package raises on purpose."""


class InputError(SentryCamError, ValueError):
    """A user-supplied argument is unusable (wrong shape, NaN/inf, unknown layer, one class...)."""


class RunFormatError(SentryCamError):
    """A run directory, or one file in it, is missing, damaged, half-written or of an unknown version."""


class WorkerError(SentryCamError, RuntimeError):
    """The background projection worker failed; raised again on ``Monitor.close()``."""
