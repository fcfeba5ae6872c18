"""How the command line shows errors and warnings: one line each, no traceback (see ``cli``)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

from .errors import SentryCamError


@contextlib.contextmanager
def warnings_shown(*, debug: bool) -> Iterator[None]:
    """While a command runs, warnings print as one ``warning: <message>`` line (in full with
    ``debug``); the previous format is restored after."""
    before = warnings.formatwarning
    if not debug:
        warnings.formatwarning = _one_line_warning
    try:
        yield
    finally:
        warnings.formatwarning = before


def one_line_error(exc: BaseException) -> str:
    """The error in one line; an OS error says what went wrong with which file."""
    if isinstance(exc, OSError) and not isinstance(exc, SentryCamError):
        where = exc.filename if exc.filename is not None else ""
        what = exc.strerror or type(exc).__name__
        text = f"{where}: {what}" if where else f"{what} ({exc})"
    else:
        text = str(exc)
    return " ".join(text.split())


def _one_line_warning(message: Warning | str, *_: object, **__: object) -> str:
    return f"warning: {' '.join(str(message).split())}\n"
