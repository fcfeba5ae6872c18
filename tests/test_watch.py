"""watch: follow a run another thread or process writes, project as checkpoints land, leases.

Most tests use the pipeline tests' real PCA projector (cheap, deterministic) so that frames can
be compared exactly with a batch ``project_run``; one slow test runs the CLI with SentryCam.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_pipeline import PCAPlumbingProjector, drifting_checkpoints, recorded_run

from sentrycam_widget.cli import main
from sentrycam_widget.lease import LeaseLostError, RunBusyError, acquire, holder_of
from sentrycam_widget.pipeline import project_checkpoint, project_run
from sentrycam_widget.projection import base
from sentrycam_widget.store import RunStore
from sentrycam_widget.watch import watch

METHOD = PCAPlumbingProjector.method
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    monkeypatch.setitem(base._REGISTRY, METHOD, "test_pipeline:PCAPlumbingProjector")


def _wait_for(condition, what: str, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _frames_equal(a: RunStore, b: RunStore, indices) -> None:
    for i in indices:
        np.testing.assert_allclose(
            a.frame(METHOD, i).embedding, b.frame(METHOD, i).embedding, rtol=1e-5, atol=1e-5
        )


def test_watch_projects_each_checkpoint_as_it_lands(tmp_path):
    checkpoints = drifting_checkpoints()
    store = RunStore.create(tmp_path / "run", checkpoints[0].labels)
    lines: list[str] = []

    def writer() -> None:  # one checkpoint at a time, the next only once the last is projected
        for checkpoint in checkpoints:
            store.append_checkpoint(checkpoint)
            _wait_for(lambda i=checkpoint.index: i in store.frame_indices(METHOD), "a frame")

    thread = threading.Thread(target=writer)
    thread.start()
    written = watch([str(store.path)], METHOD, until_idle=1.0, poll=0.05, say=lines.append)
    thread.join()
    assert written == {str(store.path): len(checkpoints)}
    assert store.frame_indices(METHOD) == list(range(len(checkpoints)))
    batch = recorded_run(tmp_path / "batch")
    project_run(batch, METHOD, metrics=False)
    _frames_equal(store, batch, range(len(checkpoints)))  # same frames as one batch projection
    assert lines[0] == f"watching {store.path} ({METHOD})"
    assert sum(f"{METHOD} checkpoint" in line for line in lines) == len(checkpoints)
    assert holder_of(store.path, METHOD) is None  # released on the way out


def test_a_restarted_watcher_resumes_where_the_last_stopped(tmp_path):
    store = recorded_run(tmp_path / "run", n=3)
    assert watch([str(store.path)], METHOD, until_idle=0, poll=0.05, say=lambda _: None) == {
        str(store.path): 3
    }
    before = {p.name: p.stat().st_mtime_ns for p in (store.path / "frames" / METHOD).glob("*.npz")}
    for checkpoint in drifting_checkpoints()[3:]:
        store.append_checkpoint(checkpoint)
    lines: list[str] = []
    assert watch([str(store.path)], METHOD, until_idle=0, poll=0.05, say=lines.append) == {
        str(store.path): 3
    }
    projected = [line for line in lines if f"{METHOD} checkpoint" in line]
    assert [line.split(f"{METHOD} checkpoint ")[1].split()[0] for line in projected] == [
        "3",
        "4",
        "5",
    ]
    after = {p.name: p.stat().st_mtime_ns for p in (store.path / "frames" / METHOD).glob("*.npz")}
    assert {k: after[k] for k in before} == before  # earlier frames untouched
    batch = recorded_run(tmp_path / "batch")
    project_run(batch, METHOD)
    _frames_equal(store, batch, range(6))


def test_a_second_watcher_says_so_and_exits_2(tmp_path, capsys):
    store = recorded_run(tmp_path / "run", n=2)
    lease = acquire(store.path, METHOD)  # another watcher, alive
    try:
        assert main(["watch", str(store.path), "--method", METHOD, "--until-idle", "0"]) == 2
        err = capsys.readouterr().err
        assert "already being projected" in err and lease.holder in err and "--wait" in err
        assert store.frame_indices(METHOD) == []
    finally:
        lease.release()
    assert main(["watch", str(store.path), "--method", METHOD, "--until-idle", "0"]) == 0
    assert store.frame_indices(METHOD) == [0, 1]


def test_wait_takes_over_when_the_other_watcher_stops(tmp_path):
    store = recorded_run(tmp_path / "run", n=2)
    lease = acquire(store.path, METHOD)
    lines: list[str] = []
    releaser = threading.Thread(
        target=lambda: (_wait_for(lambda: lines, "a line"), lease.release())
    )
    releaser.start()
    written = watch(
        [str(store.path)], METHOD, wait=True, until_idle=0.5, poll=0.05, say=lines.append
    )
    releaser.join()
    assert "waiting" in lines[0] and written == {str(store.path): 2}


def test_an_expired_lease_is_taken_over_and_its_holder_writes_nothing_more(tmp_path):
    store = recorded_run(tmp_path / "run", n=2)
    stale = acquire(store.path, METHOD, ttl=0.2)  # a watcher that stopped renewing (died)
    _wait_for(lambda: holder_of(store.path, METHOD) is None, "the lease to expire")
    fresh = acquire(store.path, METHOD)
    assert holder_of(store.path, METHOD)["holder"] == fresh.holder
    with pytest.raises(LeaseLostError, match="taken over"):
        project_checkpoint(PCAPlumbingProjector(), store.checkpoint(0), store, annotate=stale.check)
    assert store.frame_indices(METHOD) == []  # the old holder stored nothing
    with pytest.raises(LeaseLostError):
        stale.renew()
    stale.release()  # does not release the new holder's lease
    assert holder_of(store.path, METHOD)["holder"] == fresh.holder
    fresh.release()


def test_two_watchers_racing_for_a_free_lease_one_wins(tmp_path):
    store = recorded_run(tmp_path / "run", n=1)
    for round_ in range(20):
        method = f"race{round_}"
        barrier = threading.Barrier(2)
        outcomes: list[object] = []

        def contend(method=method, barrier=barrier, outcomes=outcomes) -> None:
            barrier.wait()
            try:
                outcomes.append(acquire(store.path, method))
            except RunBusyError as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=contend) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(type(o).__name__ for o in outcomes) == ["Lease", "RunBusyError"]


def test_watch_follows_a_glob_over_a_sweep_including_runs_started_later(tmp_path):
    first, second = recorded_run(tmp_path / "sweep-a", n=2), recorded_run(tmp_path / "sweep-b", n=3)
    recorded_run(tmp_path / "other", n=1)
    lines: list[str] = []

    def late_run() -> None:
        _wait_for(lambda: second.frame_indices(METHOD) == [0, 1, 2], "the first runs")
        recorded_run(tmp_path / "sweep-c", n=2)

    thread = threading.Thread(target=late_run)
    thread.start()
    written = watch(
        [str(tmp_path / "sweep-*")], METHOD, until_idle=1.5, poll=0.05, say=lines.append
    )
    thread.join()
    assert written == {str(tmp_path / f"sweep-{x}"): n for x, n in [("a", 2), ("b", 3), ("c", 2)]}
    assert RunStore.open(tmp_path / "other").frame_indices(METHOD) == []
    assert first.frame_indices(METHOD) == [0, 1]


_WRITER = """
import sys, time
from test_pipeline import drifting_checkpoints
from sentrycam_widget.store import RunStore
store = RunStore.create(sys.argv[1], drifting_checkpoints()[0].labels)
for checkpoint in drifting_checkpoints()[:3]:
    store.append_checkpoint(checkpoint)
print("three", flush=True)
time.sleep(3600)  # killed here: the writer dies mid-run
"""


def test_writer_killed_mid_run_the_watcher_projects_what_is_complete_and_waits(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(run)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "three"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    # what a writer killed inside a write leaves: a hidden temporary file, never a final name
    (run / "checkpoints" / ".000003.npz.999-deadbeef.tmp").write_bytes(b"PK\x03\x04 half")
    lines: list[str] = []
    written = watch([str(run)], METHOD, until_idle=0.5, poll=0.05, say=lines.append)
    assert written == {str(run): 3} and RunStore.open(run).frame_indices(METHOD) == [0, 1, 2]


_CLI_WATCHER = """
import sys
from sentrycam_widget.projection import base
base.register_method("pca-plumbing", "test_pipeline:PCAPlumbingProjector")
from sentrycam_widget.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_two_watcher_processes_never_write_the_same_frames(tmp_path):
    store = recorded_run(tmp_path / "run", n=2)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    command = [sys.executable, "-c", _CLI_WATCHER, "watch", str(store.path), "--method", METHOD]
    first = subprocess.Popen(
        [*command, "--poll", "0.1"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert first.stdout.readline().startswith(f"watching {store.path}")
        second = subprocess.run(
            [*command, "--until-idle", "0"], env=env, capture_output=True, text=True
        )
        assert second.returncode == 2 and "already being projected" in second.stderr
        for checkpoint in drifting_checkpoints()[2:4]:
            store.append_checkpoint(checkpoint)
        _wait_for(lambda: store.frame_indices(METHOD) == [0, 1, 2, 3], "the first watcher")
    finally:
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=60) == 130
    assert holder_of(store.path, METHOD) is None  # Ctrl-C released the lease


@pytest.mark.slow
def test_cli_watch_with_sentrycam_follows_a_writer_process(tmp_path):
    run = tmp_path / "run"
    writer = textwrap.dedent(
        """
        import sys, time
        from test_pipeline import drifting_checkpoints
        from sentrycam_widget.store import RunStore
        checkpoints = drifting_checkpoints()[:3]
        store = RunStore.create(sys.argv[1], checkpoints[0].labels)
        for checkpoint in checkpoints:
            store.append_checkpoint(checkpoint)
            while checkpoint.index not in store.frame_indices("sentrycam"):
                time.sleep(0.1)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    process = subprocess.Popen([sys.executable, "-c", writer, str(run)], env=env)
    try:
        _wait_for(lambda: (run / "manifest.json").exists(), "the writer")
        result = subprocess.run(
            [sys.executable, "-m", "sentrycam_widget", "watch", str(run), "--until-idle", "3"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
    finally:
        process.wait(timeout=600)
    assert result.returncode == 0, result.stderr
    assert "3 new sentrycam frame(s) in 1 run(s)" in result.stdout
    store = RunStore.open(run)
    assert store.frame_indices("sentrycam") == [0, 1, 2]
    assert store.frame("sentrycam", 2).metrics["trustworthiness"] > 0.8


def test_monitor_open_follow_shows_frames_as_they_land(tmp_path):
    from sentrycam_widget import Monitor

    store = recorded_run(tmp_path / "run", n=1)
    viewer = Monitor.open(store.path, follow=True, methods=[METHOD], interval=0.05)
    try:
        assert len(viewer.widget.checkpoints) == 1 and viewer.widget.frames == []
        assert viewer.widget.inverse == {METHOD: True}
        assert viewer.widget.status["queued"] == 1 and not viewer.widget.status["closed"]
        projector = PCAPlumbingProjector()
        for checkpoint in drifting_checkpoints()[1:3]:
            store.append_checkpoint(checkpoint)
        _wait_for(lambda: len(viewer.widget.checkpoints) == 3, "the new checkpoints")
        for index in range(3):
            project_checkpoint(projector, store.checkpoint(index), store, metrics=False)
        _wait_for(lambda: len(viewer.widget.frames) == 3, "the new frames")
        sent = [model.data for model in viewer.widget.frames]
        assert [d["index"] for d in sent] == [0, 1, 2]
        assert viewer.widget.status["latest_epoch"] == 10 and viewer.widget.status["queued"] == 0
    finally:
        viewer.stop()
    assert viewer.widget.status["closed"] and not viewer.feed.following


def test_watchers_with_max_runs_share_a_sweep_without_overlap(tmp_path):
    for name in "abcd":
        recorded_run(tmp_path / f"sweep-{name}", n=2)
    barrier = threading.Barrier(2)
    results: list[dict[str, int]] = []

    def watcher() -> None:
        barrier.wait()
        results.append(
            watch(
                [str(tmp_path / "sweep-*")],
                METHOD,
                max_runs=2,
                until_idle=5,
                poll=0.05,
                say=lambda _: None,
            )
        )

    threads = [threading.Thread(target=watcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first, second = (set(r) for r in results)
    assert len(first) == len(second) == 2 and not first & second
    assert first | second == {str(tmp_path / f"sweep-{name}") for name in "abcd"}
    assert all(n == 2 for r in results for n in r.values())
