"""notebooks/02_baselines.ipynb runs headlessly: three methods on one widget, every frame saved."""

from __future__ import annotations

import pytest

from tests.notebook_runner import run_notebook, widget_root

pytestmark = pytest.mark.slow

METHODS = ["sentrycam", "umap", "dvi"]


def test_baselines_notebook_shows_three_methods_on_every_checkpoint(tmp_path, monkeypatch):
    epochs = 3
    nb = run_notebook("02_baselines.ipynb", tmp_path, monkeypatch, epochs=(epochs, epochs))
    state, root = widget_root(nb)
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
