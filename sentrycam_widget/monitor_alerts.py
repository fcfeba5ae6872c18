"""Handing a live run's alerts to the user: logged once, kept, passed to ``on_alert``.

The thread monitor's worker and early thread and the process monitor's feed thread all deliver
through :func:`deliver_alerts`, so every route logs and calls back the same way.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from .records import Alert

log = logging.getLogger("sentrycam_widget")

AlertCallback = Callable[[Alert], None]


def deliver_alerts(
    alerts: list[Alert],
    method: str | None,
    into: list[Alert],
    on_alert: AlertCallback | None,
) -> None:
    """Log each alert once, append it to ``into`` and hand it to ``on_alert`` on this thread.

    Parameters
    ----------
    alerts
        The new alerts.
    method
        The projection method whose alert engine raised them (None: step-cadence early alerts);
        set as each alert's ``method``.
    into
        The monitor's list of every alert so far.
    on_alert
        The user's callback, if any; when it raises, the error is logged with its traceback
        and delivery goes on.
    """
    for alert in alerts:
        record = dataclasses.replace(alert, method=method)
        into.append(record)
        where = f"epoch {alert.epoch} ({method or 'early'})"
        log.warning("sentrycam alert at %s: %s", where, alert.explanation)
        if on_alert is not None:
            try:
                on_alert(record)
            except Exception as exc:
                log.error(
                    "on_alert raised for the %s alert at %s; recording goes on",
                    alert.signal,
                    where,
                    exc_info=exc,
                )
