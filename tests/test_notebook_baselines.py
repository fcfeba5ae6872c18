"""notebooks/02_baselines.ipynb runs headlessly: three methods on one widget, every frame saved."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "02_baselines.ipynb"
METHODS = ["sentrycam", "umap", "dvi"]


def test_baselines_notebook_shows_three_methods_on_every_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    epochs = 3
    assert f"EPOCHS = {epochs}" in nb.cells[1].source
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()

    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert errors == []
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    roots = [m["state"] for m in state.values() if "frames" in m["state"] and "probe" in m["state"]]
    assert len(roots) == 1
    root = roots[0]
    assert root["methods"] == METHODS  # the widget's method toggle
    assert root["inverse"] == {"sentrycam": True, "umap": False, "dvi": True}
    assert root["status"]["closed"] is True
    frames = [state[ref.removeprefix("anywidget:")]["state"]["data"] for ref in root["frames"]]
    shown = sorted((f["method"], f["index"]) for f in frames)
    assert shown == sorted((m, i) for m in METHODS for i in range(epochs))
    for frame in frames:
        # UMAP has no inverse: no background and no PPR in the widget, not a fake one
        has_inverse = frame["method"] != "umap"
        assert (frame["background"] is not None) == has_inverse
        assert ("ppr" in frame["metrics"]) == has_inverse
        assert frame["metrics"]["trustworthiness"] > 0.8

    table = nb.cells[5].outputs[0]["text"].splitlines()
    assert [line.split()[0] for line in table[1:]] == METHODS
    assert "n/a (no inverse)" in table[2] and "n/a" not in table[1] + table[3]
