"""Step-cadence early alerts in the live monitor: raised at their step, stored, on the timeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sentrycam_widget import demo
from sentrycam_widget.errors import InputError
from sentrycam_widget.monitor import Monitor
from sentrycam_widget.monitor_early import load_early_alerts
from sentrycam_widget.records import Alert
from sentrycam_widget.store import RunStore

FAST = {"sentrycam": {"cold_steps": 60, "warm_steps": 20, "resolution": 40}}


def _probe(digits):
    idx = np.arange(0, len(digits.y_probe), 3)
    return digits.x_probe[idx], digits.y_probe[idx]


@pytest.mark.slow
def test_a_learning_rate_blow_up_raises_early_alerts_at_their_step(tmp_path, caplog):
    """Adam ×100 from epoch 7 of 10 (22 steps an epoch, a look every 4): early alerts start
    after the blow-up, reach a raising ``on_alert`` without stopping the run, are stored in
    ``early_alerts.json`` and in the next frame, and so in the widget's payload, with their step."""
    torch.manual_seed(0)
    digits = demo.digits_data()
    model = demo.make_model(0, demo.DigitsCNN)
    optimizer = demo.make_optimizer(model)
    received: list[Alert] = []

    def on_alert(alert: Alert) -> None:
        received.append(alert)
        raise RuntimeError("the user's callback is broken")

    caplog.set_level("INFO", logger="sentrycam_widget")
    mon = Monitor(
        model,
        probe=_probe(digits),
        run_dir=tmp_path / "run",
        queue_size=20,
        on_alert=on_alert,
        method_options=FAST,
        early_every=4,
    )
    step, blow_up = 0, None
    for epoch in range(10):
        if epoch == 7:
            blow_up = step
            for group in optimizer.param_groups:
                group["lr"] *= 100
        order = torch.randperm(len(digits.y_train), generator=torch.Generator().manual_seed(epoch))
        model.train()
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            nn.functional.cross_entropy(
                model(digits.x_train[batch]), digits.y_train[batch]
            ).backward()
            optimizer.step()
            step += 1
            mon.step(step, epoch)
        mon.checkpoint(
            epoch, step=step, val_loss=demo.evaluate(model, digits.x_val, digits.y_val)[0]
        )
    mon.close()

    early = [a for a in received if a.method is None]
    assert early, "the blow-up raised no early alert"
    assert all(a.step is not None and a.step > blow_up and a.step % 4 == 0 for a in early)
    combined = [a for a in early if a.signal == "early_combined"]
    assert combined and combined[0].step < blow_up + 22  # within the epoch of the blow-up
    assert combined[0].explanation.startswith(f"step {combined[0].step} ")
    assert any(
        "on_alert raised for the early_combined alert" in r.getMessage() for r in caplog.records
    )
    # every early alert reached the callback despite it raising, and is in the run directory
    stored = load_early_alerts(RunStore.open(tmp_path / "run"))
    assert [a.to_dict() for a in stored] == [a.to_dict() for a in early]
    # ... and in the frame of the checkpoint after it, which is what the widget's timeline shows
    payloads = [payload.data for payload in mon.widget.frames]
    for alert in early:
        shown_in = [p["index"] for p in payloads if alert.to_dict() in p["alerts"]]
        assert shown_in in ([alert.checkpoint + 1], [])  # [] only after the last checkpoint
    first = combined[0]
    assert any(
        first.to_dict() in p["alerts"] for p in payloads if p["index"] == first.checkpoint + 1
    )
    frame = RunStore.open(tmp_path / "run").frame("sentrycam", first.checkpoint + 1)
    assert (
        Alert.from_dict(next(a for a in frame.alerts if a["signal"] == "early_combined")) == first
    )


def test_step_needs_early_every_and_a_valid_cadence(tmp_path):
    digits = demo.digits_data()
    model = demo.make_model(0, demo.DigitsCNN)
    mon = Monitor(model, probe=_probe(digits), run_dir=tmp_path / "a", methods=())
    with pytest.raises(InputError, match="early_every"):
        mon.step(1)
    mon.close()
    with pytest.raises(InputError, match="early_every"):
        Monitor(model, probe=_probe(digits), run_dir=tmp_path / "b", methods=(), early_every=0)
    with Monitor(
        model, probe=_probe(digits), run_dir=tmp_path / "c", methods=(), early_every=2
    ) as mon:
        mon.step(2, 0)
        for bad in (-1, 2, 1.5):
            with pytest.raises(InputError, match="step"):
                mon.step(bad)
    assert load_early_alerts(mon.store) == []
