"""A recorded run in the widget, without a model (``Monitor.open``), optionally followed live."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .live import LiveFeed
from .store import RunStore
from .widget import widget_from_store


class RunViewer:
    """A recorded run in the widget (``Monitor.open``); display it or ``save_html`` it."""

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

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def save_html(self, path: str | os.PathLike[str], title: str | None = None) -> Path:
        """Write one self-contained offline HTML file of the run."""
        from .html_export import export_html

        return export_html(self.widget, path, title or f"sentrycam run {self.store.path.name}")

    @property
    def selection(self) -> np.ndarray:
        """Probe indices selected in the widget (lasso, box or click), sorted int64 [k]."""
        return self.widget.selected
