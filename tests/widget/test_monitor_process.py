"""Monitor(worker="process"): capture here, a child process projects, the kernel feeds the widget."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from sentrycam_widget.errors import InputError, WorkerError
from sentrycam_widget.lease import acquire
from sentrycam_widget.monitor import Monitor
from sentrycam_widget.monitor_process import ProcessMonitor
from sentrycam_widget.records import Alert
from sentrycam_widget.store import RunStore

FAST = {"sentrycam": {"cold_steps": 60, "warm_steps": 20, "resolution": 40}}


def _small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))


def _small_probe(n: int = 45) -> tuple[torch.Tensor, np.ndarray]:
    return torch.randn(n, 6, generator=torch.Generator().manual_seed(1)), np.arange(n) % 3


def _frames_on_widget(mon) -> list[int]:
    return sorted(p.data["index"] for p in mon.widget.frames)


def test_child_projects_every_checkpoint_feeds_the_widget_and_delivers_alerts(tmp_path):
    """A rising val_loss fires alerts from checkpoint 5 on: the child's engine stores them with
    the frames, the kernel hands them to on_alert; the child runs niced, apart from training."""
    received = []
    mon = Monitor(
        _small_model(),
        probe=_small_probe(),
        run_dir=tmp_path / "run",
        on_alert=received.append,
        method_options=FAST,
        worker="process",
    )
    assert isinstance(mon, ProcessMonitor) and mon.child_pid != os.getpid()
    for epoch in range(8):
        assert mon.checkpoint(epoch, val_loss=float(epoch)) == epoch
    mon.flush()  # every checkpoint so far has its frame, on disk and on screen
    assert mon.store.frame_indices("sentrycam") == list(range(8))
    assert _frames_on_widget(mon) == list(range(8))
    assert mon.widget.status["captured"] == 8 and mon.widget.status["queued"] == 0
    assert os.getpriority(os.PRIO_PROCESS, mon.child_pid) == min(19, os.nice(0) + 10)
    mon.close()
    assert mon.widget.status["closed"] and mon.widget.status["error"] is None
    assert [a.checkpoint for a in received if a.signal == "val_loss"] == [5, 6, 7]
    assert all(isinstance(a, Alert) and a.method == "sentrycam" for a in received)
    assert mon.alerts == received
    stored = RunStore.open(tmp_path / "run")
    frames = [stored.frame("sentrycam", i) for i in range(8)]
    kept = [(a["checkpoint"], a["signal"]) for frame in frames for a in frame.alerts]
    assert sorted(kept) == sorted((a.checkpoint, a.signal) for a in received)
    with pytest.raises(InputError, match="closed"):
        mon.checkpoint(8)


def test_a_killed_child_keeps_its_frames_and_close_names_the_signal(tmp_path):
    mon = Monitor(
        _small_model(),
        probe=_small_probe(),
        run_dir=tmp_path / "run",
        method_options=FAST,
        worker="process",
    )
    mon.checkpoint(0)
    mon.checkpoint(1)
    mon.flush()
    os.kill(mon.child_pid, signal.SIGKILL)
    mon._child.wait()
    mon.flush()  # returns: the child has ended; the feed has noticed
    assert "killed by signal 9" in mon.widget.status["error"]
    with pytest.warns(UserWarning, match="still recording"):
        assert mon.checkpoint(2) == 2
    with pytest.raises(WorkerError, match="killed by signal 9 \\(SIGKILL\\)") as caught:
        mon.close()
    assert "--method M` for M in sentrycam" in str(caught.value)
    store = RunStore.open(tmp_path / "run")
    assert store.checkpoint_indices() == [0, 1, 2]
    assert store.frame_indices("sentrycam") == [0, 1]
    assert _frames_on_widget(mon) == [0, 1]


def test_a_failing_child_reports_its_error_and_a_resumed_run_continues(tmp_path):
    """The child cannot take the run's lease (another watcher holds it): close raises with the
    child's own error text. Once the lease is free, a resumed monitor backfills and goes on."""
    first = Monitor(_small_model(), probe=_small_probe(), run_dir=tmp_path / "run", methods=())
    for epoch in range(3):
        first.checkpoint(epoch, val_loss=1.0)
    first.close()
    lease = acquire(tmp_path / "run", "sentrycam", ttl=600)
    try:
        busy = Monitor(
            _small_model(),
            probe=_small_probe(),
            run_dir=tmp_path / "run",
            method_options=FAST,
            resume=True,
            worker="process",
        )
        busy.flush()
        with pytest.raises(WorkerError, match=r"(?s)exited with code 1.*already being projected"):
            busy.close()
    finally:
        lease.release()
    received = []
    mon = Monitor(
        _small_model(),
        probe=_small_probe(),
        run_dir=tmp_path / "run",
        method_options=FAST,
        resume=True,
        on_alert=received.append,
        worker="process",
    )
    for epoch in range(3, 11):
        assert mon.checkpoint(epoch, val_loss=float(epoch)) == epoch
    mon.close()
    assert mon.store.frame_indices("sentrycam") == list(range(11))
    assert _frames_on_widget(mon) == list(range(11))
    # alerts start afresh with the resumed monitor: none for the backfilled checkpoints 0-2
    assert received and min(a.checkpoint for a in received) >= 3


def test_process_worker_arguments_fail_fast(tmp_path):
    probe = _small_probe()
    with pytest.raises(InputError, match="worker must be 'thread' or 'process'"):
        Monitor(_small_model(), probe, run_dir=tmp_path / "a", worker="fork")
    with pytest.raises(InputError, match="worker_share paces the worker thread"):
        Monitor(_small_model(), probe, run_dir=tmp_path / "b", worker="process", worker_share=0.5)
    with pytest.raises(InputError, match="must be JSON"):
        Monitor(
            _small_model(),
            probe,
            run_dir=tmp_path / "c",
            worker="process",
            method_options={"sentrycam": {"seed": object()}},
        )
    with pytest.raises(TypeError, match="bogus"):  # the projector refuses it here, not later
        Monitor(
            _small_model(),
            probe,
            run_dir=tmp_path / "d",
            worker="process",
            method_options={"sentrycam": {"bogus": 1}},
        )
    assert not any((tmp_path / name).exists() for name in "abcd")


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling policies")
def test_the_child_lowers_every_thread_and_later_threads_inherit_it():
    """What the child does first (worker_nice / worker_idle), run in a throwaway interpreter."""
    script = (
        "import os, threading\n"
        "from sentrycam_widget.monitor_child import lower_every_thread\n"
        "before = threading.Thread(target=threading.Event().wait, daemon=True)\n"
        "before.start()\n"
        "lower_every_thread(0, idle=True)\n"
        "seen = []\n"
        "later = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))\n"
        "later.start(); later.join()\n"
        "print(os.sched_getscheduler(before.native_id), seen[0], os.SCHED_IDLE)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    policies = out.stdout.split()
    assert out.returncode == 0 and len(set(policies)) == 1, out.stderr
    script = "import os\nfrom sentrycam_widget.monitor_child import lower_every_thread\n"
    script += "start = os.nice(0)\nlower_every_thread(10)\nprint(os.nice(0) - start)\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.stdout.split() == [str(min(10, 19 - os.nice(0)))], out.stderr
