"""The monitor: capture returns at once, one worker projects, backfills, fails visibly."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from widget_synthetic import synthetic_checkpoint

from sentrycam_widget import demo
from sentrycam_widget.errors import InputError, WorkerError
from sentrycam_widget.html_export import export_run_html
from sentrycam_widget.monitor import Monitor
from sentrycam_widget.monitor_threads import CheckpointQueue
from sentrycam_widget.records import Alert

REPO = Path(__file__).resolve().parents[2]
FAST = {"sentrycam": {"cold_steps": 60, "warm_steps": 20, "resolution": 40}}


@pytest.fixture(scope="module")
def digits():
    return demo.digits_data()


def _probe(digits, step=6):
    idx = np.arange(0, len(digits.y_probe), step)
    return digits.x_probe[idx], digits.y_probe[idx]


def test_full_queue_keeps_the_newest_and_backfills_the_skipped_in_order():
    labels = np.arange(30) % 3
    queue = CheckpointQueue(size=1)
    spills = [queue.put(synthetic_checkpoint(i, labels)) for i in range(4)]
    assert [c.index for c in queue.pending] == [3]
    assert sorted(queue.skipped) == [0, 1, 2]
    # more than `size` skipped checkpoints in memory: the oldest is handed back to be stored
    assert [None if c is None else c.index for c in spills] == [None, None, 0, 0]
    queue.stored(0)
    # what a resting worker stores: held checkpoints, queued or skipped, oldest first
    assert [c.index for c in queue.in_memory()] == [1, 2, 3]
    assert queue.skipped[0] is None and queue.put(synthetic_checkpoint(4, labels)).index == 1
    queue.stored(1)
    queue.stored(2)
    assert [i for i, c in queue.skipped.items() if c is not None] == [3]
    kind, live = queue.take()
    assert kind == "live" and [c.index for c in live] == [4]
    queue.put(synthetic_checkpoint(6, labels))
    queue.skipped[5] = None
    assert [c.index for c in queue.take()[1]] == [6]
    kind, gap = queue.take()
    assert kind == "backfill" and gap == [0, 1, 2, 3]  # indices: reloaded from the run directory
    assert queue.take() == ("backfill", [5])
    queue.close()
    assert queue.take() is None


@pytest.mark.slow
def test_monitor_projects_every_checkpoint_from_one_worker_thread(tmp_path, wire, digits):
    model = demo.make_model(0, demo.DigitsCNN)
    optimizer = demo.make_optimizer(model)
    mon = Monitor(
        model, probe=_probe(digits), run_dir=tmp_path / "run", queue_size=1, method_options=FAST
    )
    widget_comm = mon.widget.comm.comm_id
    wire.clear()
    indices = []
    for epoch in range(4):
        demo.train_epoch(model, optimizer, digits.x_train, digits.y_train)
        indices.append(mon.checkpoint(epoch, val_loss=0.5, train_loss=0.4))
    assert threading.current_thread() is threading.main_thread()
    mon.close()

    assert indices == [0, 1, 2, 3]
    assert mon.store.frame_indices("sentrycam") == [0, 1, 2, 3]
    assert mon.store.checkpoint(2).scalars == {"val_loss": 0.5, "train_loss": 0.4}
    senders = {m["thread"] for m in wire}
    assert senders == {"sentrycam-worker"}, "only the worker may touch the widget"
    frame_refs = mon.widget.frames
    assert sorted(p.data["index"] for p in frame_refs) == [0, 1, 2, 3]
    assert [p.data["index"] for p in mon.widget.checkpoints] == [0, 1, 2, 3]
    assert mon.widget.status["closed"] is True and mon.widget.status["error"] is None
    # every checkpoint reached the alert engine once, in order, skipped ones included
    assert [r["checkpoint"] for r in mon.alert_engines["sentrycam"].records] == [0, 1, 2, 3]
    for i in range(4):
        stored = mon.store.frame("sentrycam", i).alerts
        assert stored == [
            dataclasses.replace(a, method=None).to_dict() for a in mon.alerts if a.checkpoint == i
        ]
    updates = [
        m for m in wire if m["comm_id"] == widget_comm and "frames" in m["data"].get("state", {})
    ]
    assert len(updates) == 4 and all(m["buffers"] == [] for m in updates)


@pytest.mark.slow
def test_reopened_run_shows_every_frame(tmp_path, digits):
    model = demo.make_model(0, demo.DigitsCNN)
    with Monitor(
        model, probe=_probe(digits, 9), run_dir=tmp_path / "run", method_options=FAST
    ) as mon:
        mon.checkpoint(0)
        mon.checkpoint(1)
        mon.flush()
        assert mon.widget.status["closed"] is False
    assert mon.widget.status["closed"] is True  # published after an idle close too
    viewer = Monitor.open(tmp_path / "run")
    assert [p.data["index"] for p in viewer.widget.frames] == [0, 1]
    first = viewer.widget.frames[0].data
    stored = mon.store.frame("sentrycam", 0).embedding
    assert np.array_equal(np.frombuffer(first["xy"]["buffer"], np.float32).reshape(-1, 2), stored)
    assert first["background"] is not None and viewer.widget.inverse == {"sentrycam": True}
    html = viewer.save_html(tmp_path / "run.html")
    assert html.stat().st_size > 1_000_000
    assert "https://" not in html.read_text()[:2000]
    from_cli = export_run_html(tmp_path / "run", tmp_path / "cli.html", title="run")
    assert from_cli.read_text().count('"anywidget:') == 4  # 2 checkpoints + 2 frames


class _SmallBatchHead(torch.nn.Module):
    """A head that maps features to logits only for at most 8 rows at a time: it passes the
    2-row check at ``checkpoint()``, cannot be exported with a dynamic batch and fails on the
    background grid."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 8:
            raise RuntimeError("this head takes at most 8 rows")
        return self.linear(x)


def _small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))


def _small_probe(n: int = 45) -> tuple[torch.Tensor, np.ndarray]:
    return torch.randn(n, 6, generator=torch.Generator().manual_seed(1)), np.arange(n) % 3


def test_a_failing_projection_loses_no_captured_checkpoint(tmp_path, caplog):
    """Issue 11 item 6: the head fails on the worker (export and background); every checkpoint
    is still stored, the failure is logged with its traceback, shown and raised on close."""
    model = _small_model()
    mon = Monitor(
        model,
        probe=_small_probe(),
        head=_SmallBatchHead(model[2]),
        run_dir=tmp_path / "run",
        method_options=FAST,
    )
    assert mon.checkpoint(0) == 0
    mon.flush()
    assert "this head takes at most 8 rows" in mon.widget.status["error"]
    with pytest.warns(UserWarning, match="still recording"):
        assert mon.checkpoint(1) == 1
    assert mon.checkpoint(2, val_loss=0.25) == 2
    with pytest.raises(WorkerError, match="at most 8 rows") as caught:
        mon.close()
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert "project" in str(caught.value)
    assert mon.store.checkpoint_indices() == [0, 1, 2]
    stored = mon.store.checkpoint(2)
    assert stored.head is None and stored.logits.shape == (45, 3)
    assert stored.scalars == {"val_loss": 0.25}
    assert [p.data["index"] for p in mon.widget.checkpoints] == [0, 1, 2]
    failures = [r for r in caplog.records if r.levelname == "ERROR"]
    assert any(r.exc_info and "at most 8 rows" in str(r.exc_info[1]) for r in failures)
    with pytest.raises(InputError, match="closed"):
        mon.checkpoint(3)


def test_a_raising_on_alert_is_logged_and_recording_goes_on(tmp_path, caplog):
    """A rising val_loss fires alerts from checkpoint 5 on; the callback raises every time."""
    received = []

    def on_alert(alert):
        received.append(alert)
        raise ValueError("user callback bug")

    caplog.set_level("INFO", logger="sentrycam_widget")
    mon = Monitor(
        _small_model(),
        probe=_small_probe(),
        run_dir=tmp_path / "run",
        queue_size=10,
        on_alert=on_alert,
        method_options=FAST,
    )
    for epoch in range(8):
        mon.checkpoint(epoch, val_loss=float(epoch))
    mon.close()
    assert mon.store.frame_indices("sentrycam") == list(range(8))
    val_loss_alerts = [a.checkpoint for a in received if a.signal == "val_loss"]
    assert val_loss_alerts == [5, 6, 7]
    raised = [r for r in caplog.records if "on_alert raised" in r.getMessage()]
    assert len(raised) == len(received)
    assert all("user callback bug" in str(r.exc_info[1]) for r in raised)


def test_skipped_checkpoints_wait_in_the_run_directory_not_in_memory(tmp_path):
    """Captures far faster than projection: at most queue_size skipped checkpoints stay in
    memory, the rest are on disk, and every one is still projected in the end."""
    mon = Monitor(
        _small_model(),
        probe=_small_probe(),
        run_dir=tmp_path / "run",
        queue_size=1,
        method_options=FAST,
    )
    held = []
    for epoch in range(12):
        mon.checkpoint(epoch)
        with mon._queue.cond:
            held.append(sum(c is not None for c in mon._queue.skipped.values()))
    mon.close()
    assert max(held) <= 1
    assert mon.store.checkpoint_indices() == list(range(12))
    assert mon.store.frame_indices("sentrycam") == list(range(12))
    assert [p.data["index"] for p in mon.widget.checkpoints] == list(range(12))


def test_bad_arguments_fail_fast(tmp_path, digits):
    model = demo.make_model(0, demo.DigitsCNN)
    probe = _probe(digits)
    with pytest.raises(InputError, match="unknown projection method"):
        Monitor(model, probe=probe, methods=("tsne",), run_dir=tmp_path / "a")
    with pytest.raises(InputError, match="queue_size"):
        Monitor(model, probe=probe, queue_size=0, run_dir=tmp_path / "b")
    with pytest.raises(InputError, match="on_alert"):
        Monitor(model, probe=probe, on_alert="print", run_dir=tmp_path / "c")
    with pytest.raises(InputError, match="share"):
        Monitor(model, probe=probe, worker_share=0, run_dir=tmp_path / "g")
    # issue 11 item 8: refused up front, not after minutes of training
    with pytest.raises(InputError, match="at least 31"):
        Monitor(model, probe=(digits.x_probe[:12], digits.y_probe[:12]), run_dir=tmp_path / "d")
    with torch.device("meta"):
        ghost = demo.make_model(0, demo.DigitsCNN)
    with pytest.raises(InputError, match="'meta' device"):
        Monitor(ghost, probe=probe, run_dir=tmp_path / "e")
    big = _small_model()
    with torch.no_grad():
        big[0].weight.mul_(1e19)
    mon = Monitor(big, probe=_small_probe(), run_dir=tmp_path / "f")
    with pytest.raises(InputError, match="rescale the features"):
        mon.checkpoint(0)
    mon.close()
    assert not any((tmp_path / p).exists() for p in "deg")


def test_worker_thread_limit_leaves_the_training_thread_alone(tmp_path):
    """The worker's torch.set_num_threads(1) must not shrink the training thread's team."""
    fresh = "import torch; print(torch.get_num_threads())"
    with_monitor = (
        "import numpy as np, torch\n"
        "from sentrycam_widget.monitor import Monitor\n"
        "model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))\n"
        # uint8 inputs: building the monitor runs no torch op on this thread before the worker
        "x = torch.zeros((40, 4), dtype=torch.uint8); y = np.arange(40) % 3\n"
        f"mon = Monitor(model, probe=(x, y), run_dir={str(tmp_path / 'run')!r})\n"
        "mon.flush()\n"
        "print(torch.get_num_threads())\n"
        "mon.close()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = [sys.executable, "-c"]
    default = subprocess.run([*run, fresh], capture_output=True, text=True, env=env, check=True)
    monitored = subprocess.run(
        [*run, with_monitor], capture_output=True, text=True, env=env, check=True, timeout=120
    )
    assert monitored.stdout.split()[-1] == default.stdout.strip()


def test_gil_switch_interval_is_short_while_a_worker_runs_and_restored_after(tmp_path):
    """Training waits ≤ 0.5 ms for the GIL while projecting (module doc); the user's setting
    comes back once the last of two overlapping monitors has closed."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    probe = (torch.zeros((40, 4)), np.arange(40) % 3)
    before = sys.getswitchinterval()
    first = Monitor(model, probe=probe, run_dir=tmp_path / "a")
    second = Monitor(model, probe=probe, run_dir=tmp_path / "b")
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    first.close()
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    second.close()
    assert sys.getswitchinterval() == before


@pytest.mark.slow
def test_alerts_reach_on_alert_the_log_and_the_stored_frames(tmp_path, wire, digits, caplog):
    """Learning rate ×100 at checkpoint 12 (the case study's failing run): the combined alert
    fires live, is passed to ``on_alert``, logged, and kept with the frames on disk."""
    model = demo.make_model(0, demo.DigitsCNN)
    optimizer = demo.make_optimizer(model, lr=1e-3)
    received = []
    caplog.set_level("INFO", logger="sentrycam_widget")
    mon = Monitor(
        model,
        probe=_probe(digits, step=3),
        run_dir=tmp_path / "run",
        queue_size=20,
        on_alert=received.append,
        method_options=FAST,
    )
    for epoch in range(16):
        if epoch == 12:
            for group in optimizer.param_groups:
                group["lr"] *= 100
        demo.train_epoch(model, optimizer, digits.x_train, digits.y_train, seed=epoch)
        val_loss, _ = demo.evaluate(model, digits.x_val, digits.y_val)
        mon.checkpoint(epoch, val_loss=val_loss)
    mon.close()

    combined = [a for a in received if a.signal == "combined"]
    assert combined and min(a.checkpoint for a in combined) >= 12
    for alert in received:
        assert isinstance(alert, Alert) and alert.method == "sentrycam" and alert.explanation
    logged = [r.getMessage() for r in caplog.records if r.name == "sentrycam_widget"]
    assert len(logged) == len(received)  # each alert logged once
    assert any("independent signals agree" in message for message in logged)
    reopened = mon.store.__class__.open(tmp_path / "run")
    stored = [
        a
        for i in reopened.frame_indices("sentrycam")
        for a in reopened.frame("sentrycam", i).alerts
    ]
    assert sorted((a["checkpoint"], a["signal"]) for a in stored) == sorted(
        (a.checkpoint, a.signal) for a in received
    )
