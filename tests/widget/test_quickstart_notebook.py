"""notebooks/01_quickstart.ipynb runs headlessly and saves every frame in its widget state."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "01_quickstart.ipynb"


def test_quickstart_runs_and_stores_every_frame(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    epochs = 8
    assert f"EPOCHS = {epochs}" in nb.cells[1].source
    NotebookClient(
        nb,
        timeout=900,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()

    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert errors == []
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    roots = [m for m in state.values() if "frames" in m["state"] and "probe" in m["state"]]
    assert len(roots) == 1
    root = roots[0]["state"]
    assert len(root["frames"]) == epochs and len(root["checkpoints"]) == epochs
    assert root["status"]["closed"] is True
    child = state[root["frames"][-1].removeprefix("anywidget:")]
    buffers = {tuple(b["path"]): b for b in child["buffers"]}
    xy = base64.b64decode(buffers[("data", "xy", "buffer")]["data"])
    coords = np.frombuffer(xy, np.float32)
    assert coords.size == 2 * 1797 and np.isfinite(coords).all()
    assert (tmp_path / "quickstart.html").stat().st_size > 1_000_000
