"""SentryCamCallback in real Lightning Trainer runs (CPU, digits)."""

from __future__ import annotations

import pytest

pl = pytest.importorskip("lightning.pytorch")

import torch  # noqa: E402
from integration_models import FAST, lightning_module, loaders, probe  # noqa: E402

from sentrycam_widget.errors import InputError  # noqa: E402
from sentrycam_widget.integrations.lightning import SentryCamCallback  # noqa: E402
from sentrycam_widget.store import RunStore  # noqa: E402


def _trainer(callbacks, max_epochs: int, **options) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **options,
    )


@pytest.mark.slow
def test_checkpoints_at_validation_end_with_epoch_step_and_val_loss(tmp_path, digits):
    callback = SentryCamCallback(
        probe(digits, every=12), run_dir=tmp_path / "run", method_options=FAST
    )
    train, val = loaders(digits)  # 8 batches per epoch
    trainer = _trainer([callback], max_epochs=3, num_sanity_val_steps=2)
    module = lightning_module()
    trainer.fit(module, train, val)
    store = RunStore.open(tmp_path / "run")
    info = store.checkpoint_info()
    # one per validated epoch, none for the sanity check
    assert [(i["epoch"], i["step"]) for i in info] == [(0, 8), (1, 16), (2, 24)]
    last_val_loss = float(trainer.callback_metrics["val_loss"])
    assert info[-1]["scalars"]["val_loss"] == pytest.approx(last_val_loss, rel=1e-6)
    assert "train_loss" in info[-1]["scalars"]
    assert store.frame_indices("sentrycam") == [0, 1, 2]  # the callback closed (drained) at fit end
    # the last checkpoint is the trained model's view of the probe
    x, _ = probe(digits, every=12)
    with torch.no_grad():
        logits = module(x).numpy()
    assert store.checkpoint(2).logits == pytest.approx(logits, abs=1e-4)
    assert callback.monitor is not None and callback.monitor.widget is not None


def test_without_validation_checkpoints_at_epoch_end_and_every_n_steps(tmp_path, digits):
    callback = SentryCamCallback(
        probe(digits), methods=(), run_dir=tmp_path / "run", every_n_epochs=2, every_n_steps=3
    )
    train, _ = loaders(digits, n_train=256)  # 4 batches per epoch
    _trainer([callback], max_epochs=4).fit(lightning_module(), train)
    info = RunStore.open(tmp_path / "run").checkpoint_info()
    steps = [i["step"] for i in info]
    # steps 3, 6, 9, 12 from every_n_steps; epoch ends at 8 (epoch 1) and 16 (epoch 3)
    assert steps == [3, 6, 8, 9, 12, 15, 16]
    assert [i["epoch"] for i in info] == [0, 1, 1, 2, 2, 3, 3]
    assert all("val_loss" not in i["scalars"] for i in info)


def test_early_every_hands_each_optimiser_step_to_the_early_alerts(tmp_path, digits):
    callback = SentryCamCallback(probe(digits), methods=(), run_dir=tmp_path / "run", early_every=2)
    train, _ = loaders(digits, n_train=256)  # 4 batches per epoch, 2 optimiser steps
    # gradient accumulation repeats the global step across batches: each step is looked at once
    _trainer([callback], max_epochs=3, accumulate_grad_batches=2).fit(lightning_module(), train)
    looks = callback.monitor._early.watch.records
    # step 0 is the first batches before any optimiser step (a look at the starting model)
    assert [(r["step"], r["epoch"]) for r in looks] == [(0, 0), (2, 0), (4, 1), (6, 2)]


def test_restored_trainer_continues_the_same_run(tmp_path, digits):
    train, val = loaders(digits, n_train=256)
    first = SentryCamCallback(probe(digits), methods=(), run_dir=tmp_path / "run")
    trainer = _trainer([first], max_epochs=2)
    trainer.fit(lightning_module(), train, val)
    trainer.save_checkpoint(tmp_path / "fit.ckpt")
    # a fresh process would build the callback with no run_dir: the trainer checkpoint has it
    second = SentryCamCallback(probe(digits), methods=())
    _trainer([second], max_epochs=4).fit(
        lightning_module(), train, val, ckpt_path=tmp_path / "fit.ckpt"
    )
    assert second.run_dir == str(tmp_path / "run")
    info = RunStore.open(tmp_path / "run").checkpoint_info()
    assert [(i["index"], i["epoch"], i["step"]) for i in info] == [
        (0, 0, 4),
        (1, 1, 8),
        (2, 2, 12),
        (3, 3, 16),
    ]


def test_bad_schedule_fails_when_the_callback_is_made(digits):
    with pytest.raises(InputError, match="every_n_epochs must be a positive integer"):
        SentryCamCallback(probe(digits), every_n_epochs=0)
    with pytest.raises(InputError, match="every_n_steps must be a positive integer"):
        SentryCamCallback(probe(digits), every_n_steps=2.5)


def test_a_failing_fit_keeps_its_error_and_closes_the_run(tmp_path, digits):
    module = lightning_module()
    real_step = module.training_step

    def failing_step(*args):
        if module.current_epoch == 1:
            raise RuntimeError("loss went NaN")
        return real_step(*args)

    module.training_step = failing_step
    callback = SentryCamCallback(probe(digits), methods=(), run_dir=tmp_path / "run")
    train, val = loaders(digits, n_train=256)
    with pytest.raises(RuntimeError, match="loss went NaN"):
        _trainer([callback], max_epochs=3).fit(module, train, val)
    assert not callback.session.started  # closed: everything captured is on disk
    info = RunStore.open(tmp_path / "run").checkpoint_info()
    assert [(i["epoch"], i["step"]) for i in info] == [(0, 4)]


def test_process_worker_projects_the_fit_and_stop_on_alert_stops_it(tmp_path, digits):
    """worker="process" through the callback's keywords: the child projects every checkpoint;
    val_loss rises every epoch, so an alert (delivered once the child's frame is on disk)
    stops the fit. A callback ahead of SentryCam's flushes at each validation, so an alert on
    checkpoint k is known at the next epoch's decision: the fit stops after checkpoint k + 1."""

    class Flush(pl.Callback):
        def on_validation_end(self, trainer, pl_module):
            if callback.monitor is not None:
                callback.monitor.flush()

    module = lightning_module()
    module.validation_step = lambda *_: module.log("val_loss", float(module.current_epoch))
    callback = SentryCamCallback(
        probe(digits, every=12),
        run_dir=tmp_path / "run",
        stop_on_alert=True,
        method_options=FAST,
        worker="process",
    )
    train, val = loaders(digits, n_train=128)
    _trainer([Flush(), callback], max_epochs=20, num_sanity_val_steps=0).fit(module, train, val)
    first = min(a.checkpoint for a in callback.monitor.alerts)
    assert first <= 5  # val_loss alerts from checkpoint 5 on, if nothing fired before
    store = RunStore.open(tmp_path / "run")
    assert [i["epoch"] for i in store.checkpoint_info()] == list(range(first + 2))
    assert store.frame_indices("sentrycam") == list(range(first + 2))
    assert sorted(p.data["index"] for p in callback.monitor.widget.frames) == list(range(first + 2))
