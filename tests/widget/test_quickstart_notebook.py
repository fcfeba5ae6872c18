"""notebooks/01_quickstart.ipynb runs headlessly and saves every frame in its widget state."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from tests.notebook_runner import run_notebook, widget_root

pytestmark = pytest.mark.slow


def test_quickstart_runs_and_stores_every_frame(tmp_path, monkeypatch):
    epochs = 8
    nb = run_notebook("01_quickstart.ipynb", tmp_path, monkeypatch, epochs=(epochs, epochs))
    state, root = widget_root(nb)
    assert len(root["frames"]) == epochs and len(root["checkpoints"]) == epochs
    assert root["status"]["closed"] is True
    child = state[root["frames"][-1].removeprefix("anywidget:")]
    buffers = {tuple(b["path"]): b for b in child["buffers"]}
    xy = base64.b64decode(buffers[("data", "xy", "buffer")]["data"])
    coords = np.frombuffer(xy, np.float32)
    assert coords.size == 2 * 1797 and np.isfinite(coords).all()
    assert (tmp_path / "quickstart.html").stat().st_size > 1_000_000
