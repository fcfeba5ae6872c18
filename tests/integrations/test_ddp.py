"""Real 2-process torch.distributed runs on CPU (gloo): only rank 0 records."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sentrycam_widget.store import RunStore

HERE = Path(__file__).parent
REPO = HERE.parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(args: list[str], cwd: Path, timeout: int = 600) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)]),
        "OMP_NUM_THREADS": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
    }
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]


def _torchrun(out: Path, *args: str, script: str = "ddp_loop.py") -> list[dict]:
    _run(
        [
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_addr=127.0.0.1",
            f"--master_port={_free_port()}",
            str(HERE / script),
            str(out),
            *args,
        ],
        cwd=out,
    )
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.slow
def test_plain_ddp_loop_records_on_rank_zero_only(tmp_path):
    zero, one = _torchrun(tmp_path, "record")
    assert zero["world"] == one["world"] == 2
    assert zero["is_recorder"] and not one["is_recorder"]
    assert zero["indices"] == [[0, 0], [1, 1], [2, 2]]
    assert one["indices"] == [[None, None]] * 3 and one["run_dir"] is None
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["run", "sharded"]
    run, sharded = RunStore.open(tmp_path / "run"), RunStore.open(tmp_path / "sharded")
    assert [(i["epoch"], i["step"]) for i in run.checkpoint_info()] == [(0, 4), (1, 8), (2, 12)]
    # the sharded monitor's gathered slices are the same probe, in order, as rank 0's capture
    for index in range(3):
        whole, gathered = run.checkpoint(index), sharded.checkpoint(index)
        np.testing.assert_allclose(gathered.features, whole.features, atol=1e-5)
        np.testing.assert_allclose(gathered.logits, whole.logits, atol=1e-5)
        np.testing.assert_allclose(gathered.head.weight, whole.head.weight)
    assert not np.allclose(run.checkpoint(0).features, run.checkpoint(2).features)


@pytest.mark.slow
def test_sharded_monitor_gathers_an_fsdp2_model_probe(tmp_path):
    # fully_shard on CPU (gloo): every forward is collective and the head is resharded right
    # after its own forward, yet rank 0's checkpoint is the unsharded model's capture
    zero, one = _torchrun(tmp_path, script="fsdp_loop.py")
    assert zero["sharded"] and one["sharded"]
    assert zero["indices"] == [0, 1] and one["indices"] == [None, None]
    assert one["run_dir"] is None
    store = RunStore.open(tmp_path / "run")
    assert [(i["epoch"], i["step"]) for i in store.checkpoint_info()] == [(0, 4), (1, 8)]
    last, reference = store.checkpoint(1), np.load(tmp_path / "reference.npz")
    np.testing.assert_allclose(last.features, reference["features"], atol=1e-5)
    np.testing.assert_allclose(last.logits, reference["logits"], atol=1e-5)
    np.testing.assert_allclose(last.head.weight, reference["weight"], atol=1e-6)
    np.testing.assert_allclose(last.head.bias, reference["bias"], atol=1e-6)
    assert not np.allclose(store.checkpoint(0).features, last.features)


@pytest.mark.slow
def test_stop_on_alert_stops_every_rank_at_the_same_step(tmp_path):
    zero, one = _torchrun(tmp_path, "stop")
    assert zero["stopped_at"] is not None
    assert zero["stopped_at"] == one["stopped_at"]
    # both ranks stopped at the epoch of rank 0's first alert (whichever signal raised it; the
    # validation loss rises from epoch 6 on, so one comes within the 30 epochs)
    assert zero["alert_signals"]
    assert zero["stopped_at"] == min(zero["alert_epochs"]) < 29
    assert one["alert_epochs"] == []
    assert RunStore.open(tmp_path / "run").checkpoint_indices()[-1] == zero["stopped_at"]


@pytest.mark.slow
def test_lightning_ddp_two_devices_makes_one_run_directory(tmp_path):
    pytest.importorskip("lightning.pytorch")
    _run([str(HERE / "ddp_lightning.py"), str(tmp_path)], cwd=tmp_path)
    zero, one = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert zero["has_monitor"] and not one["has_monitor"]
    assert one["run_dir"] is None
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and str(runs[0].resolve()) == str(Path(zero["run_dir"]).resolve())
    info = RunStore.open(runs[0]).checkpoint_info()
    assert [(i["epoch"], i["step"]) for i in info] == [(0, 4), (1, 8)]
    assert zero["global_step"] == one["global_step"] == 8
    assert info[-1]["scalars"]["val_loss"] == pytest.approx(zero["val_loss"], rel=1e-6)
