"""The run directory: roundtrip, atomic writes, damage isolation, versioning, concurrent readers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sentrycam_widget.errors import InputError, RunFormatError
from sentrycam_widget.records import Background, Checkpoint, Frame, LinearHead, TorchHead
from sentrycam_widget.store import DamagedEntryWarning, RunStore

N, D, C = 12, 5, 3
LABELS = np.arange(N) % C


def make_checkpoint(index: int, *, d: int = D, seed: int | None = None) -> Checkpoint:
    rng = np.random.default_rng(index if seed is None else seed)
    features = rng.normal(size=(N, d)).astype(np.float32)
    head = LinearHead(rng.normal(size=(C, d)), rng.normal(size=C))
    return Checkpoint(
        index=index,
        epoch=10 * index,
        features=features,
        labels=LABELS,
        head=head,
        scalars={"val_loss": 1.0 / (index + 1)},
    )


def make_frame(index: int, method: str = "sentrycam") -> Frame:
    rng = np.random.default_rng(100 + index)
    classes = rng.integers(0, C, size=(4, 4))
    alpha = rng.integers(0, 256, size=(4, 4))
    return Frame(
        method=method,
        index=index,
        epoch=10 * index,
        embedding=rng.normal(size=(N, 2)),
        background=Background(classes, alpha, (-1.0, 1.0, -2.0, 2.0)),
        recon_pred=rng.integers(0, C, size=N),
        metrics={"trustworthiness": 0.9 + index / 100},
        timings={"total": 0.5},
        alerts=[{"signal": "fisher", "value": np.float32(1.5), "explanation": "class means merge"}],
    )


def make_run(path: Path, n_checkpoints: int = 3, n_frames: int = 3) -> RunStore:
    images = np.arange(N * 8 * 8, dtype=np.uint8).reshape(N, 8, 8)
    store = RunStore.create(path, LABELS, layer="fc2", probe={"n_points": N}, images=images)
    for i in range(n_checkpoints):
        store.append_checkpoint(make_checkpoint(i))
    for i in range(n_frames):
        store.append_frame(make_frame(i))
    return store


def test_roundtrip_checkpoints_frames_and_run_facts(tmp_path):
    make_run(tmp_path / "run")
    store = RunStore.open(tmp_path / "run")
    assert store.n_points == N and store.n_features == D and store.n_classes == C
    assert store.layer == "fc2"
    np.testing.assert_array_equal(store.labels, LABELS)
    assert store.images.shape == (N, 8, 8) and store.images.dtype == np.uint8
    assert store.checkpoint_indices() == [0, 1, 2]
    assert store.epochs() == {0: 0, 1: 10, 2: 20}

    original = make_checkpoint(1)
    loaded = store.checkpoint(1)
    np.testing.assert_array_equal(loaded.features, original.features)
    np.testing.assert_array_equal(loaded.logits, original.logits)
    np.testing.assert_array_equal(loaded.head.weight, original.head.weight)
    assert loaded.scalars == pytest.approx({"val_loss": 0.5})

    assert store.methods() == ["sentrycam"]
    assert store.frame_indices("sentrycam") == [0, 1, 2]
    frame = store.frame("sentrycam", 2)
    expected = make_frame(2)
    np.testing.assert_array_equal(frame.embedding, expected.embedding)
    np.testing.assert_array_equal(frame.background.classes, expected.background.classes)
    np.testing.assert_array_equal(frame.background.alpha, expected.background.alpha)
    assert frame.background.extent == (-1.0, 1.0, -2.0, 2.0)
    np.testing.assert_array_equal(frame.recon_pred, expected.recon_pred)
    assert frame.metrics == pytest.approx({"trustworthiness": 0.92})
    assert frame.alerts[0]["signal"] == "fisher" and frame.alerts[0]["value"] == 1.5
    assert [f.index for f in store.frames("sentrycam")] == [0, 1, 2]


def test_frames_of_several_methods_and_missing_frames(tmp_path):
    store = make_run(tmp_path / "run", n_checkpoints=4, n_frames=2)
    store.append_frame(make_frame(3, method="umap"))
    assert store.methods() == ["sentrycam", "umap"]
    assert store.missing_frames("sentrycam") == [2, 3]
    assert store.missing_frames("umap") == [0, 1, 2]
    assert store.missing_frames("dvi") == [0, 1, 2, 3]
    assert store.frame_indices("dvi") == []


def test_frame_without_background_or_recon(tmp_path):
    store = make_run(tmp_path / "run", n_frames=0)
    store.append_frame(Frame("umap", 0, 0, np.zeros((N, 2))))
    frame = store.frame("umap", 0)
    assert frame.background is None and frame.recon_pred is None and frame.alerts == []


def test_replace_frame_rewrites_alerts(tmp_path):
    store = make_run(tmp_path / "run")
    frame = store.frame("sentrycam", 1)
    with pytest.raises(InputError, match="already stored"):
        store.append_frame(frame)
    frame.alerts = [{"signal": "cka", "explanation": "drift"}]
    store.append_frame(frame, replace=True)
    assert RunStore.open(tmp_path / "run").frame("sentrycam", 1).alerts[0]["signal"] == "cka"


def test_torch_head_is_stored_without_pickled_classes(tmp_path):
    store = RunStore.create(tmp_path / "run", LABELS)
    module = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(D, C))
    features = np.random.default_rng(0).normal(size=(N, D)).astype(np.float32)
    store.append_checkpoint(Checkpoint(0, 0, features, LABELS, head=TorchHead(module)))
    loaded = RunStore.open(tmp_path / "run").checkpoint(0)
    assert isinstance(loaded.head, TorchHead)
    np.testing.assert_allclose(loaded.head(features), TorchHead(module)(features), atol=1e-6)
    np.testing.assert_allclose(
        loaded.head(features[:1]), TorchHead(module)(features[:1]), atol=1e-6
    )


def test_checkpoints_must_agree_with_the_run(tmp_path):
    store = make_run(tmp_path / "run", n_frames=0)
    with pytest.raises(InputError, match="D = 7"):
        store.append_checkpoint(make_checkpoint(5, d=7))
    other = make_checkpoint(5)
    other.labels = (LABELS + 1) % C
    with pytest.raises(InputError, match="different probe labels"):
        store.append_checkpoint(other)
    with pytest.raises(InputError, match="already stored"):
        store.append_checkpoint(make_checkpoint(1))
    with pytest.raises(InputError, match="checkpoint 9 is not stored"):
        store.append_frame(make_frame(9))
    with pytest.raises(InputError, match="embedding"):
        store.append_frame(Frame("sentrycam", 0, 0, np.zeros((N + 1, 2))))


def test_create_refuses_existing_run_or_foreign_directory(tmp_path):
    make_run(tmp_path / "run")
    with pytest.raises(InputError, match="already holds a run"):
        RunStore.create(tmp_path / "run", LABELS)
    reopened = RunStore.create(tmp_path / "run", LABELS, exist_ok=True)
    assert reopened.checkpoint_indices() == [0, 1, 2]
    with pytest.raises(InputError, match="different probe labels"):
        RunStore.create(tmp_path / "run", (LABELS + 1) % C, exist_ok=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        RunStore.create(tmp_path / "other", LABELS)


def test_not_a_run_or_newer_version_is_a_run_format_error(tmp_path):
    with pytest.raises(RunFormatError, match="does not exist"):
        RunStore.open(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFormatError, match=r"no manifest\.json"):
        RunStore.open(tmp_path / "empty")
    make_run(tmp_path / "run")
    manifest_path = tmp_path / "run" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["version"] = 2
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(RunFormatError, match="version 2 is not supported"):
        RunStore.open(tmp_path / "run")
    manifest["format"] = "something-else"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(RunFormatError, match="not a sentrycam run manifest"):
        RunStore.open(tmp_path / "run")
    manifest_path.write_text("{ truncated")
    with pytest.raises(RunFormatError, match=r"manifest\.json"):
        RunStore.open(tmp_path / "run")
    manifest.update(format="sentrycam-run", version=1)
    for key, value in (("n_points", "abc"), ("n_classes", None), ("n_features", -3)):
        manifest_path.write_text(json.dumps({**manifest, key: value}))
        with pytest.raises(RunFormatError, match=f"manifest {key} must be a positive integer"):
            RunStore.open(tmp_path / "run")


def test_temp_files_are_ignored_and_damaged_files_are_named(tmp_path):
    make_run(tmp_path / "run", n_checkpoints=4, n_frames=4)
    frames_dir = tmp_path / "run" / "frames" / "sentrycam"
    # a crash mid-write leaves a temp file, never a final name
    (frames_dir / ".000004.npz.123-abcd.tmp").write_bytes(b"PK\x03\x04 half written")
    # a truncated final file (disk trouble, a copy cut short)
    damaged = frames_dir / "000002.npz"
    damaged.write_bytes(damaged.read_bytes()[:100])
    # a frame whose meta JSON is bad, and a checkpoint with a missing key
    with np.load(frames_dir / "000003.npz") as z:
        arrays = dict(z)
    arrays["meta"] = np.array("{not json")
    np.savez(frames_dir / "000003.npz", **arrays)
    ckpt_path = tmp_path / "run" / "checkpoints" / "000001.npz"
    with np.load(ckpt_path) as z:
        arrays = {k: v for k, v in z.items() if k != "features"}
    np.savez(ckpt_path, **arrays)

    store = RunStore.open(tmp_path / "run")
    assert store.frame_indices("sentrycam") == [0, 1, 2, 3]
    with pytest.warns(DamagedEntryWarning) as record:
        frames = store.frames("sentrycam")
    messages = [str(w.message) for w in record if w.category is DamagedEntryWarning]
    assert sorted(re.search(r"\d{6}\.npz", m).group() for m in messages) == [
        "000002.npz",
        "000003.npz",
    ]
    assert [f.index for f in frames] == [0, 1]
    assert {d.path.name for d in store.damaged} == {"000002.npz", "000003.npz"}
    with pytest.raises(RunFormatError, match=r"000002\.npz: damaged file"):
        store.frame("sentrycam", 2)
    with pytest.raises(RunFormatError, match=r"000003\.npz: bad meta JSON"):
        store.frame("sentrycam", 3)
    with pytest.raises(RunFormatError, match=r"000001\.npz: missing features"):
        store.checkpoint(1)
    with pytest.warns(DamagedEntryWarning, match="000001.npz"):
        assert [c.index for c in store.checkpoints()] == [0, 2, 3]
    # the damaged frame can be recomputed and replaces the bad file
    store.append_frame(make_frame(2), replace=True)
    assert store.frame("sentrycam", 2).index == 2
    assert "000002.npz" not in {d.path.name for d in store.damaged}


def test_entry_with_wrong_version_or_index_is_damaged(tmp_path):
    store = make_run(tmp_path / "run")
    path = tmp_path / "run" / "frames" / "sentrycam" / "000001.npz"
    with np.load(path) as z:
        arrays = dict(z)
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.array(json.dumps({**meta, "version": 9}))
    np.savez(path, **arrays)
    with pytest.raises(RunFormatError, match="entry format version 9"):
        store.frame("sentrycam", 1)
    arrays["meta"] = np.array(json.dumps({**meta, "index": 0}))
    np.savez(path, **arrays)
    with pytest.raises(RunFormatError, match="holds index 0, its name says 1"):
        store.frame("sentrycam", 1)
    arrays["meta"] = np.array(json.dumps({**meta, "index": "one"}))
    np.savez(path, **arrays)
    with pytest.raises(RunFormatError, match="integer index/epoch"):
        store.frame("sentrycam", 1)
    arrays["meta"] = np.array(json.dumps({**meta, "alerts": 5}))
    np.savez(path, **arrays)
    with pytest.raises(RunFormatError, match=r"000001\.npz"):
        store.frame("sentrycam", 1)
    ckpt_path = tmp_path / "run" / "checkpoints" / "000002.npz"
    with np.load(ckpt_path) as z:
        arrays = dict(z)
    arrays["head_b"] = arrays["head_b"][:1]
    np.savez(ckpt_path, **arrays)
    with pytest.raises(RunFormatError, match=r"000002\.npz: head bias"):
        store.checkpoint(2)


def test_projector_state_roundtrip_keeps_arrays_tensors_and_module_state(tmp_path):
    store = make_run(tmp_path / "run")
    assert store.load_projector_state("sentrycam") is None
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    state = {
        "net": net.state_dict(),
        "positions": np.arange(6, dtype=np.float32).reshape(3, 2),
        "memory": [{"epoch": 1, "idx": np.array([1, 5])}],
        "rng": np.random.default_rng(3).bit_generator.state,
        "scale": np.float64(2.5),
        "shape": (3, 2),
    }
    store.save_projector_state("sentrycam", 2, state)
    index, loaded = RunStore.open(tmp_path / "run").load_projector_state("sentrycam")
    assert index == 2
    np.testing.assert_array_equal(loaded["positions"], state["positions"])
    np.testing.assert_array_equal(loaded["memory"][0]["idx"], [1, 5])
    assert loaded["rng"] == state["rng"] and loaded["scale"] == 2.5 and loaded["shape"] == (3, 2)
    other = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    other.load_state_dict(loaded["net"])
    for a, b in zip(other.state_dict().values(), net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(InputError, match=r"state\['bad'\]"):
        store.save_projector_state("sentrycam", 3, {"bad": object()})
    (tmp_path / "run" / "frames" / "sentrycam" / "000002.state.pt").write_bytes(b"garbage")
    with pytest.raises(RunFormatError, match=r"000002\.state\.pt"):
        store.load_projector_state("sentrycam")


def test_states_are_kept_per_index_and_pruned_once_the_next_frame_is_stored(tmp_path):
    store = make_run(tmp_path / "run")
    store.save_projector_state("sentrycam", 1, {"step": 1})
    store.save_projector_state("sentrycam", 2, {"step": 2})
    assert store.load_projector_state("sentrycam") == (2, {"step": 2})
    assert store.load_projector_state("sentrycam", 1) == (1, {"step": 1})
    assert store.load_projector_state("sentrycam", 0) is None
    store.prune_projector_states("sentrycam", keep=2)
    assert store.load_projector_state("sentrycam", 1) is None
    assert store.load_projector_state("sentrycam", 2) == (2, {"step": 2})


def test_a_damaged_labels_file_is_named_once_not_blamed_on_every_checkpoint(tmp_path):
    make_run(tmp_path / "run")
    (tmp_path / "run" / "labels.npy").write_bytes(b"\x93NUMPY truncated")
    store = RunStore.open(tmp_path / "run")
    with pytest.raises(RunFormatError, match=r"labels\.npy"):
        list(store.checkpoints())
    assert store.damaged == []


_RACER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from sentrycam_widget.errors import InputError
    from sentrycam_widget.records import Checkpoint
    from sentrycam_widget.store import RunStore

    store = RunStore.open(sys.argv[1])
    me, start = int(sys.argv[2]), float(sys.argv[3])
    labels = np.arange(2000) % 3
    entries = [
        Checkpoint(i, 100 * me + i, np.full((2000, 64), me, np.float32), labels)
        for i in range(int(sys.argv[4]))
    ]
    while time.time() < start:
        pass
    for checkpoint in entries:
        try:
            store.append_checkpoint(checkpoint)
            print(checkpoint.index, "stored", flush=True)
        except InputError as exc:
            assert "already stored" in str(exc), exc
            print(checkpoint.index, "refused", flush=True)
    """
)


def test_two_processes_racing_for_the_same_entries_store_each_exactly_once(tmp_path):
    """Append-only under races: the check and the publish are one create-exclusive step."""
    run, rounds = tmp_path / "run", 25
    RunStore.create(run, np.arange(2000) % 3, n_features=64)
    root = Path(__file__).resolve().parents[1]
    start = f"{time.time() + 3.0:.3f}"  # both processes begin appending at the same instant
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(run), str(me), start, str(rounds)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        for me in (1, 2)
    ]
    outcomes = []
    for racer in racers:
        out, _ = racer.communicate(timeout=120)
        assert racer.returncode == 0
        outcomes.append(dict(line.split() for line in out.splitlines()))
    store = RunStore.open(run)
    assert store.checkpoint_indices() == list(range(rounds))
    for index in range(rounds):
        winners = [
            me
            for me, outcome in zip((1, 2), outcomes, strict=True)
            if outcome[str(index)] == "stored"
        ]
        assert len(winners) == 1, f"entry {index} stored by {winners}"
        stored = store.checkpoint(index)  # the entry on disk is the winner's, whole
        assert stored.epoch == 100 * winners[0] + index
        assert (stored.features == winners[0]).all()
    assert not [n for n in os.listdir(run / "checkpoints") if n.endswith(".tmp")]


def test_n_features_fixed_by_first_checkpoint_and_seen_by_open_readers(tmp_path):
    writer = RunStore.create(tmp_path / "run", LABELS)
    reader = RunStore.open(tmp_path / "run")
    assert reader.n_features is None and reader.checkpoint_indices() == []
    writer.append_checkpoint(make_checkpoint(0))
    assert reader.n_features == D
    assert reader.checkpoint_indices() == [0]


def test_reader_thread_sees_only_complete_entries_while_writer_appends(tmp_path):
    store = RunStore.create(tmp_path / "run", LABELS)
    reader = RunStore.open(tmp_path / "run")
    errors: list[BaseException] = []
    seen: set[int] = set()
    done = threading.Event()

    def read_loop() -> None:
        try:
            while not done.is_set():
                for index in reader.frame_indices("sentrycam"):
                    frame = reader.frame("sentrycam", index)
                    np.testing.assert_array_equal(frame.embedding, make_frame(index).embedding)
                    seen.add(index)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=read_loop)
    thread.start()
    for i in range(40):
        store.append_checkpoint(make_checkpoint(i))
        store.append_frame(make_frame(i))
    done.set()
    thread.join()
    assert errors == []
    assert seen  # the reader really read while the writer wrote
    assert reader.frame_indices("sentrycam") == list(range(40))


_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from sentrycam_widget.records import Checkpoint
    from sentrycam_widget.store import RunStore

    store = RunStore.create(sys.argv[1], np.arange({n}) % 3)
    rng = np.random.default_rng(0)
    for i in range(100000):
        features = rng.normal(size=({n}, 64)).astype(np.float32)
        store.append_checkpoint(Checkpoint(i, i, features, np.arange({n}) % 3))
        print(i, flush=True)
    """
)


def test_process_killed_mid_write_loses_at_most_the_entry_in_flight(tmp_path):
    run = tmp_path / "run"
    n = 20000  # 5 MB per checkpoint: a write takes long enough to be caught in flight
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER.format(n=n), str(run)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    acknowledged = -1
    while acknowledged < 2:
        line = proc.stdout.readline()
        assert line, "writer exited early"
        acknowledged = int(line)
    deadline = time.monotonic() + 30
    while not any(name.endswith(".tmp") for name in os.listdir(run / "checkpoints")):
        assert time.monotonic() < deadline, "never saw a write in flight"
    os.kill(proc.pid, signal.SIGKILL)  # killed while a temporary file is being written
    proc.wait()
    proc.stdout.close()

    assert any(name.endswith(".tmp") for name in os.listdir(run / "checkpoints"))
    store = RunStore.open(run)
    # the killed writer's temp file is removed when the run is opened
    assert not [name for name in os.listdir(run / "checkpoints") if name.endswith(".tmp")]
    indices = store.checkpoint_indices()
    assert indices == list(range(len(indices)))  # no holes
    assert len(indices) >= acknowledged + 1  # everything acknowledged survived
    for index in indices:  # every listed entry is complete and readable
        assert store.checkpoint(index).features.shape == (n, 64)
    assert store.damaged == []
