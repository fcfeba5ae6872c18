"""The audit: alerts of a recorded or imported run, stored in the run and read back."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from sentrycam_widget import demo
from sentrycam_widget.alerts import SIGNALS
from sentrycam_widget.audit import ALERTS_FILE, audit_run, format_audit, load_audit
from sentrycam_widget.capture import Recorder
from sentrycam_widget.errors import InputError, RunFormatError
from sentrycam_widget.importing import import_arrays
from sentrycam_widget.pipeline import project_checkpoint
from sentrycam_widget.probe import ProbeSet
from sentrycam_widget.projection import make_projector
from sentrycam_widget.store import RunStore

N_PROBE = 300


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory, one_torch_thread):
    """A real digits CNN, 13 epochs, the LR raised 100x from epoch 11 on; SentryCam frames."""
    data = demo.digits_data(0)
    model = demo.make_model(0, demo.DigitsCNN)
    optimizer = demo.make_optimizer(model)
    probe = ProbeSet(data.x_probe[:N_PROBE], data.y_probe[:N_PROBE].numpy())
    recorder = Recorder(model, probe)
    store = RunStore.create(tmp_path_factory.mktemp("audit") / "run", probe.labels)
    projector = make_projector("sentrycam", seed=0, cold_steps=150, warm_steps=40)
    for epoch in range(1, 14):
        for group in optimizer.param_groups:
            group["lr"] = 1e-3 if epoch < 11 else 0.1
        demo.train_epoch(model, optimizer, data.x_train, data.y_train, seed=epoch)
        val_loss, _ = demo.evaluate(model, data.x_val, data.y_val)
        checkpoint = recorder.capture(index=epoch - 1, epoch=epoch, scalars={"val_loss": val_loss})
        store.append_checkpoint(checkpoint)
        project_checkpoint(projector, checkpoint, store, metrics=False)
    return store.path


@pytest.mark.slow
def test_audit_of_a_recorded_run_persists_and_survives_reopen(recorded_run):
    result = audit_run(recorded_run)
    assert set(result["first_firing"]) == {*SIGNALS, "reference", "combined"}
    assert result["checkpoints"] == 13 and result["frames_used"] == 13
    assert result["note"] == ""
    assert [r["checkpoint"] for r in result["records"]] == list(range(13))
    assert {"intra_class_variance_2d", "between_within_2d", "fisher_ratio"} <= set(
        result["records"][6]
    )
    # The LR jump at epoch 11 (checkpoint 10) kills the network: the combined alert sees it.
    assert result["first_firing"]["combined"] == 10
    assert result["alerts"] and all(a["checkpoint"] >= 5 for a in result["alerts"])

    reopened = RunStore.open(recorded_run)
    stored = load_audit(reopened)
    assert stored["alerts"] == result["alerts"]
    assert stored["first_firing"] == result["first_firing"]
    for frame in reopened.frames("sentrycam"):
        assert frame.alerts == [a for a in result["alerts"] if a["checkpoint"] == frame.index]
    again = audit_run(reopened)  # idempotent: the same alerts, not appended twice
    assert again["alerts"] == result["alerts"]
    assert sum(len(f.alerts) for f in RunStore.open(recorded_run).frames("sentrycam")) == len(
        result["alerts"]
    )
    text = format_audit(stored)
    assert "combined" in text and "epoch 11" in text


def _imported(tmp_path, val_loss, n_checkpoints=None, name="imported"):
    """An imported run: 4 stable classes in 8-D, with ``val_loss`` (or none) per checkpoint."""
    n = len(val_loss) if val_loss is not None else n_checkpoints
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 25)
    means = rng.normal(size=(4, 8)) * 3.0
    features = np.stack([means[labels] + rng.normal(size=(100, 8)) for _ in range(n)])
    source = {"features": features.astype(np.float32), "labels": labels}
    if val_loss is not None:
        source["val_loss"] = np.asarray(val_loss)
    return import_arrays(source, tmp_path / name)


def test_val_loss_rule_fires_on_an_imported_run_with_rising_val_loss(tmp_path, caplog):
    val_loss = [1.0 - 0.05 * t for t in range(10)] + [0.6, 0.8, 1.0, 1.2, 1.4]
    store = _imported(tmp_path, val_loss)
    with caplog.at_level(logging.INFO, logger="sentrycam_widget"):
        result = audit_run(store.path)
    assert any("validation loss moved the bad way" in r.getMessage() for r in caplog.records)
    assert result["first_firing"]["val_loss"] == 11
    assert result["frames_used"] == 0
    assert "feature-space signals only" in result["note"]
    assert result["first_firing"]["reference"] is None  # no layout, no V/D
    assert all("_2d" not in name for record in result["records"] for name in record)
    assert json.loads((store.path / ALERTS_FILE).read_text())["alerts"] == result["alerts"]
    assert load_audit(RunStore.open(store.path))["first_firing"]["val_loss"] == 11
    assert "val_loss" in format_audit(result) and "feature-space signals only" in format_audit(
        result
    )


def test_audit_without_val_loss_says_the_baseline_is_missing(tmp_path):
    store = _imported(tmp_path, None, n_checkpoints=12)
    assert load_audit(store) is None  # never audited
    result = audit_run(store, eval_size=50)
    assert result["first_firing"]["val_loss"] is None
    assert "no val_loss scalar" in result["note"]
    flat = audit_run(_imported(tmp_path, [0.5] * 12, name="flat"))
    assert flat["first_firing"]["val_loss"] is None and "no val_loss" not in flat["note"]


def test_audit_rejects_bad_input(tmp_path):
    with pytest.raises(RunFormatError, match="not a sentrycam run"):
        audit_run(tmp_path / "nowhere")
    with pytest.raises(InputError, match="RunStore or a run directory"):
        audit_run(42)
    empty = RunStore.create(tmp_path / "empty", np.array([0, 1, 0, 1]))
    with pytest.raises(InputError, match="no readable checkpoint"):
        audit_run(empty)
    store = _imported(tmp_path, [0.5] * 3)
    (store.path / ALERTS_FILE).write_text("{ half")
    with pytest.raises(RunFormatError, match="unreadable audit"):
        load_audit(store)
