"""Monitor.checkpoint(epoch, *, step, val_loss): the step axis end to end, record-only, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
from integration_models import FAST, probe

from sentrycam_widget import demo
from sentrycam_widget.errors import InputError
from sentrycam_widget.monitor import Monitor
from sentrycam_widget.store import RunStore
from sentrycam_widget.widget import checkpoint_payload


def _train(model, data, steps: int = 4) -> None:
    optimizer = demo.make_optimizer(model)
    demo.train_epoch(model, optimizer, data.x_train[: 64 * steps], data.y_train[: 64 * steps])


def test_step_is_recorded_stored_and_sent_to_the_widget(tmp_path, digits):
    model = demo.make_model(0, demo.DigitsCNN)
    with Monitor(model, probe(digits), methods=(), run_dir=tmp_path / "run") as mon:
        assert mon.checkpoint(0, step=0, val_loss=2.3) == 0
        _train(model, digits)
        assert mon.checkpoint(step=40) == 1  # epoch left out: the last one given is kept
        assert mon.checkpoint(1) == 2  # an epoch without a step
    store = RunStore.open(tmp_path / "run")
    info = store.checkpoint_info()
    assert [(i["epoch"], i["step"]) for i in info] == [(0, 0), (0, 40), (1, None)]
    assert info[0]["scalars"] == {"val_loss": 2.3}
    assert store.checkpoint(1).step == 40
    assert checkpoint_payload(store.checkpoint(1))["step"] == 40
    assert checkpoint_payload(store.checkpoint(2))["step"] is None


def test_checkpoint_rejects_a_missing_or_malformed_epoch_and_step(tmp_path, digits):
    model = demo.make_model(0, demo.DigitsCNN)
    with Monitor(model, probe(digits), methods=(), run_dir=tmp_path / "run") as mon:
        with pytest.raises(InputError, match="needs an epoch or a step"):
            mon.checkpoint()
        with pytest.raises(InputError, match="epoch must be an integer"):
            mon.checkpoint(1.5)
        with pytest.raises(InputError, match="step must be a non-negative integer"):
            mon.checkpoint(0, step=-3)
        assert mon.checkpoint(2.0, step=np.int64(7)) == 0  # integral values are fine
        assert mon.checkpoint(-1) == 1  # e.g. "before training"; steps are never negative
    info = RunStore.open(tmp_path / "run").checkpoint_info()
    assert [(i["epoch"], i["step"]) for i in info] == [(2, 7), (-1, None)]


def test_runs_written_before_steps_existed_still_load(tmp_path, digits):
    """A checkpoint whose meta has no ``step`` (the format before it) reads as step None."""
    model = demo.make_model(0, demo.DigitsCNN)
    with Monitor(model, probe(digits), methods=(), run_dir=tmp_path / "run") as mon:
        mon.checkpoint(3, step=12)
    path = tmp_path / "run" / "checkpoints" / "000000.npz"
    with np.load(path) as npz:
        arrays = dict(npz)
    meta = json.loads(str(arrays["meta"]))
    del meta["step"]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    store = RunStore.open(tmp_path / "run")
    assert store.checkpoint(0).step is None and store.checkpoint(0).epoch == 3
    assert store.checkpoint_info()[0]["step"] is None
    assert checkpoint_payload(store.checkpoint(0))["step"] is None


def test_record_only_monitor_writes_checkpoints_and_no_frames(tmp_path, digits):
    model = demo.make_model(0, demo.DigitsCNN)
    with Monitor(model, probe(digits), methods=(), run_dir=tmp_path / "run") as mon:
        for epoch in range(3):
            _train(model, digits, steps=1)
            mon.checkpoint(epoch, step=epoch + 1)
        assert mon.widget is None
        assert "record-only" in mon._repr_mimebundle_()["text/plain"]
        with pytest.raises(InputError, match="record-only"):
            mon.save_html(tmp_path / "run.html")
    store = RunStore.open(tmp_path / "run")
    assert store.checkpoint_indices() == [0, 1, 2]
    assert store.methods() == []
    # the features are the model's, not copies of one capture
    assert not np.allclose(store.checkpoint(0).features, store.checkpoint(2).features)


@pytest.mark.slow
def test_resume_continues_a_run_backfills_its_missing_frames_and_shows_it_all(tmp_path, digits):
    model = demo.make_model(0, demo.DigitsCNN)
    run = tmp_path / "run"
    with Monitor(model, probe(digits), methods=(), run_dir=run) as first:
        for epoch in range(2):  # recorded without projecting: frames missing
            _train(model, digits)
            first.checkpoint(epoch, step=4 * (epoch + 1))
    with pytest.raises(InputError, match="already holds a run"):
        Monitor(model, probe(digits), methods=(), run_dir=run)
    with pytest.raises(InputError, match="needs the run_dir"):
        Monitor(model, probe(digits), resume=True)
    with Monitor(model, probe(digits), run_dir=run, resume=True, method_options=FAST) as mon:
        _train(model, digits)
        assert mon.checkpoint(2, step=12) == 2
        mon.flush()
        assert [c.data["index"] for c in mon.widget.checkpoints] == [0, 1, 2]
        assert sorted(f.data["index"] for f in mon.widget.frames) == [0, 1, 2]
    store = RunStore.open(run)
    assert [(i["epoch"], i["step"]) for i in store.checkpoint_info()] == [(0, 4), (1, 8), (2, 12)]
    assert store.frame_indices("sentrycam") == [0, 1, 2]
    with pytest.raises(InputError, match="different probe labels"):
        x, y = probe(digits)
        Monitor(model, (x, (y + 1) % 10), methods=(), run_dir=run, resume=True)
