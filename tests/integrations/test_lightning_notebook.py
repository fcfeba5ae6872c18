"""notebooks/06_lightning.ipynb runs headlessly: the callback's widget holds every validated epoch."""

from __future__ import annotations

import pytest

pytest.importorskip("lightning.pytorch")

from tests.notebook_runner import run_notebook, widget_root


@pytest.mark.slow
def test_lightning_notebook_shows_each_validated_epoch_with_its_step(tmp_path, monkeypatch):
    epochs = 2
    nb = run_notebook("06_lightning.ipynb", tmp_path, monkeypatch, epochs=(6, epochs))
    state, root = widget_root(nb)
    assert root["status"]["closed"] is True
    checkpoints = [
        state[r.removeprefix("anywidget:")]["state"]["data"] for r in root["checkpoints"]
    ]
    steps_per_epoch = 22  # 1,347 training digits in batches of 64
    assert [(c["epoch"], c["step"]) for c in checkpoints] == [
        (e, steps_per_epoch * (e + 1)) for e in range(epochs)
    ]
    frames = [state[r.removeprefix("anywidget:")]["state"]["data"] for r in root["frames"]]
    assert sorted(f["index"] for f in frames) == list(range(epochs))
    printed = nb.cells[4].outputs[0]["text"].splitlines()
    assert [line.split()[:4] for line in printed] == [
        ["epoch", str(e), "step", str(steps_per_epoch * (e + 1))] for e in range(epochs)
    ]
