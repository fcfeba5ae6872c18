"""project_checkpoint / project_run / import_arrays on real data and a real store.

``PCAPlumbingProjector`` below is a real (tiny) projector: PCA to 2-D with an exact linear
inverse, warm-started by aligning its axes to the previous checkpoint's. It exists only to test
the store/pipeline plumbing (timings, metrics, resume, backfill) without the cost of the
SentryCam engine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sentrycam_widget.capture import checkpoint_from_arrays
from sentrycam_widget.errors import InputError
from sentrycam_widget.importing import import_arrays
from sentrycam_widget.pipeline import print_progress, project_checkpoint, project_run
from sentrycam_widget.projection import base
from sentrycam_widget.projection.base import Projector, RunHistory
from sentrycam_widget.records import Background, Checkpoint, Frame
from sentrycam_widget.store import RunStore

N, D, C, T = 60, 6, 3, 6


class PCAPlumbingProjector(Projector):
    """PCA to 2-D; axes sign-aligned to the previous checkpoint's (that alignment is its state)."""

    method = "pca-plumbing"
    has_inverse = True

    def __init__(self, resolution: int = 8) -> None:
        self.resolution = resolution
        self.components: np.ndarray | None = None
        self.updates_since_start = 0

    def update(self, checkpoint: Checkpoint) -> Frame:
        x = checkpoint.features.astype(np.float64)
        mean = x.mean(axis=0)
        components = np.linalg.svd(x - mean, full_matrices=False)[2][:2]
        if self.components is not None:
            signs = np.sign(np.sum(components * self.components, axis=1))
            components *= np.where(signs == 0, 1.0, signs)[:, None]
        self.components = components
        self.updates_since_start += 1
        embedding = (x - mean) @ components.T
        decode = lambda y: (y @ components + mean).astype(np.float32)  # noqa: E731
        recon_pred = checkpoint.head(decode(embedding)).argmax(axis=1)
        return Frame(
            self.method,
            checkpoint.index,
            checkpoint.epoch,
            embedding,
            background=self._background(embedding, decode, checkpoint),
            recon_pred=recon_pred,
        )

    def _background(self, embedding, decode, checkpoint) -> Background:
        (x0, y0), (x1, y1) = embedding.min(axis=0), embedding.max(axis=0)
        gx, gy = np.meshgrid(
            np.linspace(x0, x1, self.resolution), np.linspace(y0, y1, self.resolution)
        )
        logits = checkpoint.head(decode(np.stack([gx.ravel(), gy.ravel()], axis=1)))
        top = np.sort(logits, axis=1)
        margin = (top[:, -1] - top[:, -2]) / np.maximum(top[:, -1] - top[:, 0], 1e-12)
        shape = (self.resolution, self.resolution)
        alpha = np.round(255 * margin / margin.max()).reshape(shape)
        return Background(logits.argmax(axis=1).reshape(shape), alpha, (x0, x1, y0, y1))

    def state_dict(self) -> dict[str, Any]:
        return {"components": self.components, "updates_since_start": self.updates_since_start}

    def resume(self, history: RunHistory, state: dict[str, Any] | None) -> None:
        if state is not None:
            self.components = state["components"]
            self.updates_since_start = state["updates_since_start"]
            return
        last = history.frame_indices(self.method)[-1]  # rebuild the axes from the stored frame
        x = history.checkpoint(last).features.astype(np.float64)
        y = history.frame(self.method, last).embedding.astype(np.float64)
        self.components = np.linalg.lstsq(x - x.mean(axis=0), y, rcond=None)[0].T


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    monkeypatch.setitem(
        base._REGISTRY, PCAPlumbingProjector.method, f"{__name__}:PCAPlumbingProjector"
    )


def drifting_checkpoints() -> list[Checkpoint]:
    """Three Gaussian classes whose means rotate a little per checkpoint; a fixed linear head."""
    rng = np.random.default_rng(0)
    labels = np.arange(N) % C
    centres = rng.normal(scale=4.0, size=(C, D))
    noise = rng.normal(size=(N, D))
    weight = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    checkpoints = []
    for t in range(T):
        angle = 0.15 * t
        rotation = np.eye(D)
        rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
        features = (centres[labels] + noise) @ rotation.T
        checkpoints.append(
            checkpoint_from_arrays(
                t,
                5 * t,
                features,
                labels,
                head_W=weight @ rotation.T,
                scalars={"val_loss": 1.0 / (t + 1)},
            )
        )
    return checkpoints


def recorded_run(path, n: int = T) -> RunStore:
    checkpoints = drifting_checkpoints()
    store = RunStore.create(path, checkpoints[0].labels)
    for checkpoint in checkpoints[:n]:
        store.append_checkpoint(checkpoint)
    return store


def test_project_checkpoint_times_scores_and_stores(tmp_path):
    store = recorded_run(tmp_path / "run")
    projector = PCAPlumbingProjector()
    frame = project_checkpoint(projector, store.checkpoint(0), store)
    assert frame.timings["total"] > 0 and frame.timings["metrics"] > 0
    assert set(frame.metrics) >= {"trustworthiness", "continuity", "knn_preservation", "ppr"}
    assert frame.metrics["trustworthiness"] > 0.8  # well-separated blobs: PCA keeps them apart
    assert frame.metrics["ppr"] == pytest.approx(
        np.mean(frame.recon_pred == store.checkpoint(0).predictions)
    )
    stored = RunStore.open(tmp_path / "run").frame("pca-plumbing", 0)
    np.testing.assert_array_equal(stored.embedding, frame.embedding)
    assert stored.metrics == pytest.approx(frame.metrics)
    index, state = store.load_projector_state("pca-plumbing")
    assert index == 0 and state["updates_since_start"] == 1


def test_annotate_runs_before_the_frame_is_stored(tmp_path):
    store = recorded_run(tmp_path / "run")

    def add_alert(frame: Frame) -> None:
        frame.alerts.append({"signal": "test", "index": frame.index})

    project_checkpoint(
        PCAPlumbingProjector(), store.checkpoint(0), store, metrics=False, annotate=add_alert
    )
    assert store.frame("pca-plumbing", 0).alerts == [{"signal": "test", "index": 0}]
    assert store.frame("pca-plumbing", 0).metrics == {}


def test_project_run_resumes_from_a_reopened_store_with_identical_frames(tmp_path, capsys):
    full = recorded_run(tmp_path / "full")
    expected = project_run(full, "pca-plumbing", metrics=False)
    assert [f.index for f in expected] == list(range(T))

    half = recorded_run(tmp_path / "half", n=3)
    assert [f.index for f in project_run(half, "pca-plumbing", metrics=False)] == [0, 1, 2]
    for checkpoint in drifting_checkpoints()[3:]:  # training went on; a new session reopens
        half.append_checkpoint(checkpoint)
    reopened = RunStore.open(tmp_path / "half")
    assert reopened.missing_frames("pca-plumbing") == [3, 4, 5]
    resumed = project_run(reopened, "pca-plumbing", metrics=False, progress=print_progress)
    assert [f.index for f in resumed] == [3, 4, 5]
    assert "[3/3] pca-plumbing checkpoint 5 (epoch 25)" in capsys.readouterr().out
    assert reopened.frame_indices("pca-plumbing") == list(range(T))
    for frame in expected:
        np.testing.assert_allclose(
            reopened.frame("pca-plumbing", frame.index).embedding, frame.embedding, atol=1e-5
        )
    # the saved state reached the resumed projector: its counter went on from 3, not from 0
    index, state = reopened.load_projector_state("pca-plumbing")
    assert index == 5 and state["updates_since_start"] == T
    assert project_run(reopened, "pca-plumbing") == []


def test_project_run_backfills_holes_without_disturbing_later_frames(tmp_path):
    store = recorded_run(tmp_path / "run")
    expected = {f.index: f.embedding for f in project_run(store, "pca-plumbing", metrics=False)}
    later = store.frame("pca-plumbing", 4).embedding.copy()
    for index in (2, 3, 5):
        (tmp_path / "run" / "frames" / "pca-plumbing" / f"{index:06d}.npz").unlink()
    done = project_run(store, "pca-plumbing", metrics=False)
    assert [f.index for f in done] == [2, 3, 5]
    np.testing.assert_array_equal(store.frame("pca-plumbing", 4).embedding, later)
    for index, embedding in expected.items():
        np.testing.assert_allclose(
            store.frame("pca-plumbing", index).embedding, embedding, atol=1e-5
        )
    assert store.load_projector_state("pca-plumbing")[0] == 5


def test_stale_state_is_not_used_for_resume(tmp_path):
    store = recorded_run(tmp_path / "run", n=3)
    project_run(store, "pca-plumbing", metrics=False)
    (store.path / "frames" / "pca-plumbing" / "000002.state.pt").unlink()
    store.save_projector_state("pca-plumbing", 1, {"components": None, "updates_since_start": 99})
    for checkpoint in drifting_checkpoints()[3:]:
        store.append_checkpoint(checkpoint)
    project_run(store, "pca-plumbing", metrics=False)
    # resumed from the frames (state belonged to checkpoint 1, not 2): counting restarted
    assert store.load_projector_state("pca-plumbing")[1]["updates_since_start"] == 3


def test_import_arrays_builds_a_run(tmp_path):
    checkpoints = drifting_checkpoints()
    features = np.stack([c.features for c in checkpoints])
    head_W = np.stack([c.head.weight for c in checkpoints])
    path = tmp_path / "arrays.npz"
    np.savez(
        path,
        features=features,
        labels=checkpoints[0].labels,
        head_W=head_W,
        val_loss=np.arange(T) / 10,
        epochs=np.arange(T) * 2,
    )
    store = import_arrays(path, tmp_path / "run")
    assert store.checkpoint_indices() == list(range(T))
    assert store.epochs() == {t: 2 * t for t in range(T)}
    loaded = store.checkpoint(4)
    np.testing.assert_allclose(loaded.logits, features[4] @ head_W[4].T, atol=1e-5)
    assert loaded.scalars == {"val_loss": pytest.approx(0.4)}
    with pytest.raises(InputError, match="'features' must be"):
        import_arrays({"features": features[0], "labels": checkpoints[0].labels}, tmp_path / "bad")
    with pytest.raises(InputError, match="missing required key 'labels'"):
        import_arrays({"features": features}, tmp_path / "bad")
    with pytest.raises(InputError, match=r"'head_W' has shape .* must be \(6,\)"):
        import_arrays(
            {"features": features, "labels": checkpoints[0].labels, "head_W": head_W[:2]},
            tmp_path / "bad",
        )
    broken = features.copy()
    broken[2, 0, 0] = np.nan
    with pytest.raises(InputError, match=r"checkpoint\(s\) \[2\]"):
        import_arrays({"features": broken, "labels": checkpoints[0].labels}, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_sentrycam_engine_resumes_to_the_same_frames(tmp_path):
    """The real engine: 2 checkpoints, reopen, 1 more == 3 in one go (weights and memory resumed)."""
    n, d = 200, 12
    rng = np.random.default_rng(0)
    labels = np.arange(n) % C
    centres, noise = rng.normal(scale=3.0, size=(C, d)), rng.normal(size=(n, d))
    weight = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    checkpoints = [
        checkpoint_from_arrays(t, t, centres[labels] * (1 + 0.2 * t) + noise, labels, head_W=weight)
        for t in range(3)
    ]
    options = {"resolution": 10, "cold_steps": 30, "warm_steps": 10, "min_samples": 100}

    full = RunStore.create(tmp_path / "full", labels)
    for checkpoint in checkpoints:
        full.append_checkpoint(checkpoint)
    expected = project_run(full, "sentrycam", metrics=False, **options)

    part = RunStore.create(tmp_path / "part", labels)
    for checkpoint in checkpoints[:2]:
        part.append_checkpoint(checkpoint)
    project_run(part, "sentrycam", metrics=False, **options)
    part.append_checkpoint(checkpoints[2])
    reopened = RunStore.open(tmp_path / "part")
    assert [f.index for f in project_run(reopened, "sentrycam", metrics=False, **options)] == [2]
    assert reopened.frame_indices("sentrycam") == [0, 1, 2]
    for frame in expected:
        stored = reopened.frame("sentrycam", frame.index)
        np.testing.assert_array_equal(stored.embedding, frame.embedding)
        np.testing.assert_array_equal(stored.background.classes, frame.background.classes)
    assert reopened.load_projector_state("sentrycam")[0] == 2


_FAST_SENTRYCAM = {"cold_steps": 60, "warm_steps": 20, "resolution": 20}
_PROJECT = textwrap.dedent(
    f"""
    import sys
    from sentrycam_widget.pipeline import project_run
    from sentrycam_widget.store import RunStore

    project_run(RunStore.open(sys.argv[1]), "sentrycam", metrics=False, **{_FAST_SENTRYCAM!r})
    """
)


@pytest.mark.parametrize(
    ("killed_at", "seen"), [(1, "npz"), (3, "npz"), (2, "state.pt"), (0, "state.pt")]
)
def test_project_killed_by_sigkill_resumes_to_the_uninterrupted_frames(tmp_path, killed_at, seen):
    """kill -9 as soon as frame ``killed_at`` is visible, or as soon as its projector state is
    (written just before the frame: the kill lands between the two writes); the resumed run's
    frames equal an uninterrupted run's, bit for bit."""
    reference = recorded_run(tmp_path / "reference")
    expected = project_run(reference, "sentrycam", metrics=False, **_FAST_SENTRYCAM)
    run = recorded_run(tmp_path / "run").path
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        [sys.executable, "-c", _PROJECT, str(run)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    target = run / "frames" / "sentrycam" / f"{killed_at:06d}.{seen}"
    deadline = time.monotonic() + 300
    while not target.exists():
        assert process.poll() is None, "the projecting process ended before the kill"
        assert time.monotonic() < deadline
        time.sleep(0.0002)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    resumed = RunStore.open(run)
    stored = killed_at + 1 if seen == "npz" else killed_at
    assert resumed.frame_indices("sentrycam")[:stored] == list(range(stored))
    project_run(resumed, "sentrycam", metrics=False, **_FAST_SENTRYCAM)
    for frame in expected:
        np.testing.assert_array_equal(
            resumed.frame("sentrycam", frame.index).embedding, frame.embedding
        )
