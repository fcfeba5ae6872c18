"""Run directories at fsspec URLs: memory:// in-process, and s3:// on a real moto S3 server.

The S3 server is moto's standalone server, started by the tests as its own process on a free
localhost port and reached over HTTP by s3fs, from this process and from child processes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from test_pipeline import PCAPlumbingProjector, drifting_checkpoints

from sentrycam_widget.cli import main
from sentrycam_widget.errors import InputError, RunFormatError
from sentrycam_widget.filesystem import LocalDir, RemoteDir, run_dir
from sentrycam_widget.lease import RunBusyError, acquire, holder_of
from sentrycam_widget.monitor import Monitor
from sentrycam_widget.pipeline import project_run
from sentrycam_widget.projection import base
from sentrycam_widget.records import TorchHead
from sentrycam_widget.store import DamagedEntryWarning, RunStore
from sentrycam_widget.watch import watch

pytest.importorskip("s3fs")
pq = pytest.importorskip("pyarrow.parquet")
METHOD = PCAPlumbingProjector.method
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    monkeypatch.setitem(base._REGISTRY, METHOD, "test_pipeline:PCAPlumbingProjector")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server process on localhost; yields the environment that points s3fs at it."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the moto S3 server did not start")
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        s3fs.S3FileSystem().mkdir("runs")
        yield env
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _url(scheme: str) -> str:
    return f"{scheme}://runs/{uuid.uuid4().hex[:10]}"


def _recorded(url: str, n: int) -> RunStore:
    checkpoints = drifting_checkpoints()
    store = RunStore.create(url, checkpoints[0].labels)
    for checkpoint in checkpoints[:n]:
        store.append_checkpoint(checkpoint)
    return store


def test_locations_pick_local_or_fsspec(tmp_path):
    assert isinstance(run_dir(tmp_path / "a"), LocalDir)
    assert run_dir(f"file://{tmp_path}/a").location == str(tmp_path / "a")
    assert isinstance(run_dir("memory://runs/x"), RemoteDir)
    with pytest.raises(InputError, match="cannot open nosuchscheme://x"):
        run_dir("nosuchscheme://x")


@pytest.mark.parametrize("scheme", ["memory", "s3"])
def test_a_run_at_a_url_reads_back_everything_it_was_given(scheme, request):
    if scheme == "s3":
        request.getfixturevalue("s3")
    url = _url(scheme)
    store = _recorded(url, 3)
    head = torch.nn.Sequential(torch.nn.Linear(6, 3))
    last = drifting_checkpoints()[3]
    store.append_checkpoint(
        type(last)(3, last.epoch, last.features, last.labels, head=TorchHead(head))
    )
    project_run(store, METHOD, metrics=False)
    with pytest.raises(InputError, match="already stored"):
        store.append_checkpoint(drifting_checkpoints()[0])
    with pytest.raises(InputError, match="already holds a run"):
        RunStore.create(url, store.labels)
    reopened = RunStore.open(url)
    assert reopened.path == url and reopened.name == url.rsplit("/", 1)[1]
    assert reopened.checkpoint_indices() == [0, 1, 2, 3] and reopened.n_features == 6
    assert reopened.methods() == [METHOD] and reopened.missing_frames(METHOD) == []
    np.testing.assert_array_equal(reopened.labels, store.labels)
    original = drifting_checkpoints()[1]
    np.testing.assert_array_equal(reopened.checkpoint(1).features, original.features)
    np.testing.assert_allclose(reopened.checkpoint(1).logits, original.logits)
    x = torch.randn(5, 6)
    torch.testing.assert_close(reopened.checkpoint(3).head.forward_torch(x), head(x))
    frame = reopened.frame(METHOD, 2)
    assert frame.background is not None and frame.recon_pred.shape == (store.n_points,)
    assert reopened.load_projector_state(METHOD)[0] == 3


def test_a_damaged_object_is_named_and_skipped(s3):
    url = _url("s3")
    store = _recorded(url, 3)
    store.files.write_bytes("checkpoints/000001.npz", b"PK\x03\x04 not a zip")
    reopened = RunStore.open(url)
    with pytest.warns(DamagedEntryWarning, match="000001.npz"):
        assert [c.index for c in reopened.checkpoints()] == [0, 2]
    assert [d.path for d in reopened.damaged] == [f"{url}/checkpoints/000001.npz"]
    with pytest.raises(
        RunFormatError, match=f"{url}-missing is not a sentrycam run: it does not exist"
    ):
        RunStore.open(f"{url}-missing")


def test_every_cli_command_takes_an_s3_url(s3, tmp_path, capsys):
    url = _url("s3")
    checkpoints = drifting_checkpoints()
    arrays = {
        "features": np.stack([c.features for c in checkpoints]),
        "labels": checkpoints[0].labels,
        "head_W": np.stack([c.head.weight for c in checkpoints]),
        "head_b": np.stack([c.head.bias for c in checkpoints]),
        "val_loss": np.linspace(1.0, 0.5, len(checkpoints)),
    }
    np.savez(tmp_path / "run.npz", **arrays)
    assert main(["import", str(tmp_path / "run.npz"), url]) == 0
    assert main(["watch", url, "--method", METHOD, "--until-idle", "0"]) == 0
    assert main(["project", url, "--method", METHOD]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["evaluate", url, "--method", METHOD, "--json"]) == 0
    assert f'"run": "{url}"' in capsys.readouterr().out
    assert main(["audit", url, "--method", METHOD, "--json"]) == 0
    assert RunStore.open(url).files.exists("alerts.json")
    out = tmp_path / "out"
    out.mkdir()
    assert main(["export", url, "--method", METHOD, "--parquet", str(out / "f.parquet")]) == 0
    assert pq.read_table(out / "f.parquet").num_rows == len(checkpoints) * 60
    assert main(["export", url, "--method", METHOD, "--npz", str(out / "f.npz")]) == 0
    assert main(["export", url, "--method", METHOD, "--tensorboard", str(out / "tb")]) == 0
    assert main(["export", url, "--html", str(out / "run.html")]) == 0
    assert (out / "run.html").stat().st_size > 10_000
    assert main(["evaluate", f"{url}-missing"]) == 2
    assert "is not a sentrycam run" in capsys.readouterr().err


def test_monitor_records_to_s3_and_a_follower_sees_it(s3):
    url = _url("s3")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    checkpoint = drifting_checkpoints()[0]
    probe = (torch.from_numpy(checkpoint.features), torch.from_numpy(checkpoint.labels))
    viewer = None
    with Monitor(model, probe=probe, methods=[METHOD], run_dir=url) as mon:
        for epoch in range(3):
            mon.checkpoint(epoch)
            mon.flush()
            if viewer is None:
                viewer = Monitor.open(url, follow=True, interval=0.05)
    try:
        deadline = time.monotonic() + 120
        while len(viewer.widget.frames) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [m.data["epoch"] for m in viewer.widget.frames] == [0, 1, 2]
    finally:
        viewer.stop()
    store = RunStore.open(url)
    assert store.checkpoint_indices() == [0, 1, 2] and store.frame_indices(METHOD) == [0, 1, 2]
    assert store.layer == mon.store.layer


def test_object_writes_are_whole_a_reader_never_sees_part_of_an_entry(s3):
    """A reader process lists and loads entries while this process writes large ones."""
    url = _url("s3")
    labels = np.arange(4000) % 3
    store = RunStore.create(url, labels, n_features=256)
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, url, "12"], stdout=subprocess.PIPE, text=True
    )
    rng = np.random.default_rng(0)
    for index in range(12):
        features = np.full((4000, 256), index, np.float32) + rng.normal(size=(1, 256))
        store.append_checkpoint(
            type(drifting_checkpoints()[0])(index, index, features.astype(np.float32), labels)
        )
    out, _ = reader.communicate(timeout=300)
    assert reader.returncode == 0, out
    assert out.strip().endswith("read 12 complete entries")


_READER = """
import sys, numpy as np
from sentrycam_widget.store import RunStore
store, seen = RunStore.open(sys.argv[1]), set()
while len(seen) < int(sys.argv[2]):
    for index in store.checkpoint_indices():
        if index not in seen:
            features = store.checkpoint(index).features  # raises if the object were partial
            assert features.shape == (4000, 256) and np.all(features[:, 0] == features[0, 0])
            seen.add(index)
print(f"read {len(seen)} complete entries")
"""


def test_leases_and_watch_work_on_s3(s3):
    url = _url("s3")
    store = _recorded(url, 2)
    first = acquire(url, METHOD)
    with pytest.raises(RunBusyError, match="already being projected"):
        acquire(url, METHOD)  # the conditional PUT / listing on S3 sees the live lease
    first.release()
    assert holder_of(url, METHOD) is None
    sweep = f"s3://runs/sweep-{uuid.uuid4().hex[:6]}"
    _recorded(f"{sweep}/a", 2)
    _recorded(f"{sweep}/b", 1)
    written = watch([f"{sweep}/*", url], METHOD, until_idle=0, poll=0.05, say=lambda _: None)
    assert written == {f"{sweep}/a": 2, f"{sweep}/b": 1, url: 2}
    assert RunStore.open(f"{sweep}/a").frame_indices(METHOD) == [0, 1]
    assert store.frame_indices(METHOD) == [0, 1]


def test_two_processes_racing_for_an_s3_lease_one_wins(s3):
    url = _url("s3")
    _recorded(url, 1)
    racer = """
import sys, time
from sentrycam_widget.lease import RunBusyError, acquire
while time.time() < float(sys.argv[2]):
    pass
try:
    acquire(sys.argv[1], "race")
    print("won")
except RunBusyError:
    print("busy")
"""
    start = f"{time.time() + 8:.3f}"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", racer, url, start], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = sorted(p.communicate(timeout=120)[0].strip() for p in racers)
    assert results == ["busy", "won"]


@pytest.mark.slow
def test_demo_records_projects_and_draws_into_s3(s3, capsys):
    url = _url("s3")
    assert main(["demo", "--out", url, "--epochs", "1"]) == 0
    assert f"contact sheet: {url}/contact_sheet.png" in capsys.readouterr().out
    store = RunStore.open(url)
    assert store.frame_indices("sentrycam") == [0]
    assert store.files.read_bytes("contact_sheet.png")[:8] == b"\x89PNG\r\n\x1a\n"
