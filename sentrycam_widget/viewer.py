"""Showing a run in Jupyter: the display/save/selection mixin of Monitor and RunViewer, and RunViewer."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .live import LiveFeed
from .store import RunStore
from .widget import SentryCamWidget, widget_from_store


class WidgetView:
    """Display (``_repr_mimebundle_``), ``save_html`` and ``selection`` of an object's ``widget``.

    The class using it sets ``self.widget`` (a :class:`~sentrycam_widget.widget.SentryCamWidget`,
    or None for a record-only monitor) and ``self.store`` (the run shown).
    """

    widget: SentryCamWidget | None
    store: RunStore

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        if self.widget is None:
            return {"text/plain": f"record-only sentrycam monitor writing to {self.store.path}"}
        return self.widget._repr_mimebundle_(**kwargs)

    def save_html(self, path: str | os.PathLike[str], title: str | None = None) -> Path:
        """Write one self-contained offline HTML file with every frame shown so far.

        Parameters
        ----------
        path
            The ``.html`` file to write.
        title
            The page title (default ``sentrycam run <run name>``).

        Returns
        -------
        Path
            The file written.
        """
        from .html_export import export_html

        return export_html(self._widget(), path, title or f"sentrycam run {self.store.name}")

    @property
    def selection(self) -> np.ndarray:
        """Probe indices selected in the widget (lasso, box or click), sorted int64 [k]."""
        return self._widget().selected

    def _widget(self) -> SentryCamWidget:
        if self.widget is None:
            raise InputError(
                "a record-only monitor (methods=()) has no widget to save or select in"
            )
        return self.widget


class RunViewer(WidgetView):
    """A recorded run in the widget (``Monitor.open``); display it or ``save_html`` it.

    Parameters
    ----------
    run_dir
        The run directory (a path or an fsspec URL).
    follow
        Keep up with a run another process is still writing.
    methods
        With ``follow``: the methods whose new frames are shown (default: those stored, else
        sentrycam).
    interval
        With ``follow``: seconds between looks at the run directory.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        follow: bool = False,
        *,
        methods: Sequence[str] | None = None,
        interval: float = 1.0,
    ) -> None:
        self.store = RunStore.open(run_dir)
        self.feed: LiveFeed | None = None
        if follow:
            self.feed = LiveFeed(self.store, methods, interval)
            self.widget = self.feed.widget
            self.feed.start()
        else:
            self.widget = widget_from_store(self.store)

    def stop(self) -> None:
        """Stop following the run (no-op for a snapshot view)."""
        if self.feed is not None:
            self.feed.stop()


def open_run(
    run_dir: str | os.PathLike[str],
    follow: bool = False,
    *,
    methods: Sequence[str] | None = None,
    interval: float = 1.0,
) -> RunViewer:
    """Show a recorded run (every stored checkpoint and frame) without a model: ``Monitor.open``.

    Parameters
    ----------
    run_dir, follow, methods, interval
        As for :class:`RunViewer` (``follow`` keeps up with a run ``python -m sentrycam_widget
        watch`` is projecting, until ``viewer.stop()``).

    Returns
    -------
    RunViewer
        Display it in a notebook cell, or ``save_html`` it.
    """
    return RunViewer(run_dir, follow=follow, methods=methods, interval=interval)
