"""SentryCamProjector end to end on a small real training run (sklearn digits, a torch MLP)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from sentrycam_widget.errors import InputError, RunFormatError
from sentrycam_widget.projection import make_projector
from sentrycam_widget.projection.sentrycam import SentryCamProjector
from sentrycam_widget.records import Checkpoint, Frame, LinearHead

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = {"cold_steps": 40, "warm_steps": 10, "batch_edges": 500, "resolution": 32}


@functools.cache
def _digits_run(n_checkpoints: int = 3) -> tuple[Checkpoint, ...]:
    """Penultimate features (32-d) and the last Linear of an MLP after each training round."""
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    body = torch.nn.Sequential(
        torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32), torch.nn.ReLU()
    )
    head = torch.nn.Linear(32, 10)
    optimizer = torch.optim.Adam([*body.parameters(), *head.parameters()], lr=3e-3)
    checkpoints = []
    for index in range(n_checkpoints):
        for start in range(0, 1797, 64):
            loss = torch.nn.functional.cross_entropy(
                head(body(x[start : start + 64])), y[start : start + 64]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            features = body(x).numpy()
        linear = LinearHead(head.weight.detach().numpy().copy(), head.bias.detach().numpy().copy())
        checkpoints.append(Checkpoint(index, index + 1, features, digits.target, head=linear))
    return tuple(checkpoints)


@functools.cache
def _run() -> tuple[SentryCamProjector, tuple[Frame, ...]]:
    projector = SentryCamProjector(seed=0, **FAST)
    return projector, tuple(projector.update(c) for c in _digits_run())


def _frames() -> tuple[Frame, ...]:
    return _run()[1]


class _History:
    """An in-memory run (the RunHistory protocol) holding the first frames of a run."""

    def __init__(self, checkpoints, frames):
        self.checkpoints, self.frames = checkpoints, frames

    def frame_indices(self, method):
        return [f.index for f in self.frames] if method == "sentrycam" else []

    def checkpoint(self, index):
        return self.checkpoints[index]

    def frame(self, method, index):
        return self.frames[index]


def test_every_frame_has_all_points_a_background_round_trip_predictions_and_timings():
    checkpoints, frames = _digits_run(), _frames()
    for checkpoint, frame in zip(checkpoints, frames, strict=True):
        assert frame.method == "sentrycam" and frame.index == checkpoint.index
        assert frame.epoch == checkpoint.epoch
        assert frame.embedding.shape == (1797, 2) and np.isfinite(frame.embedding).all()
        assert frame.background.classes.shape == (32, 32)
        assert frame.background.alpha.max() > 0 and (frame.background.alpha == 0).any()
        assert frame.recon_pred.shape == (1797,)
        stages = {"spatial_graph", "refinement", "decoder", "background"}
        if checkpoint.index == 0:  # later frames are refined from the previous one
            stages |= {"sampling", "memory", "training", "projection"}
        assert stages <= set(frame.timings) and all(v >= 0 for v in frame.timings.values())
        assert frame.metrics["sample_size"] == 1797  # small probe sets use every point
    assert frames[0].metrics["memory_size"] == 0 and frames[2].metrics["memory_size"] > 0


def test_by_default_the_encoder_is_trained_once_and_later_frames_come_from_the_refinement():
    checkpoints = _digits_run()
    default = SentryCamProjector(seed=0, **{**FAST, "warm_steps": None})
    tuned = SentryCamProjector(seed=0, **FAST)  # fine-tunes the encoder 10 steps per checkpoint
    for checkpoint in checkpoints:
        shown, also_tuned = default.update(checkpoint), tuned.update(checkpoint)
        # the refinement starts from the previous frame, so the encoder's fine-tune is not shown
        np.testing.assert_array_equal(shown.embedding, also_tuned.embedding)
        trained = "training" in shown.timings
        assert trained == (checkpoint.index == 0)
        assert shown.metrics["train_steps"] == (40 if trained else 0)
    assert (default.cold_steps, default.warm_steps) == (40, 0)
    assert (SentryCamProjector().cold_steps, SentryCamProjector().warm_steps) == (300, 0)
    spec = SentryCamProjector(graph="sample", refine_epochs=0, decoder_steps=0)
    assert (spec.cold_steps, spec.warm_steps) == (900, 100)


def test_frames_are_faithful_enough_to_be_meaningful():
    from sklearn.manifold import trustworthiness

    checkpoint, frame = _digits_run()[-1], _frames()[-1]
    # a broken projector (random or collapsed layout) scores ~0.5 here and PPR ~0.1
    assert trustworthiness(checkpoint.features, frame.embedding, n_neighbors=15) > 0.85
    assert np.mean(frame.recon_pred == checkpoint.predictions) > 0.7


def test_same_seed_gives_identical_frames_and_another_seed_differs():
    again = SentryCamProjector(seed=0, **FAST)
    first = _frames()
    for checkpoint, frame in zip(_digits_run()[:2], first[:2], strict=False):
        assert np.array_equal(again.update(checkpoint).embedding, frame.embedding)
    other = SentryCamProjector(seed=1, **FAST).update(_digits_run()[0])
    assert not np.allclose(other.embedding, first[0].embedding)


def test_memory_freezes_the_positions_of_the_frames_they_came_from():
    projector, frames = _run()
    for index in (0, 1, 2):
        epoch = projector.memory.get(index)
        assert np.array_equal(epoch.frozen, frames[index].embedding[epoch.point_ids])
        assert np.array_equal(epoch.features, _digits_run()[index].features[epoch.point_ids])


def _linear_weights(state):
    return {k: v for k, v in state["weights"].items() if "running" not in k and "batches" not in k}


def test_warm_start_begins_from_the_previous_checkpoints_weights():
    # with a vanishing learning rate the weights after update t are those it started from
    projector = SentryCamProjector(seed=0, **FAST)
    checkpoints = _digits_run()
    projector.update(checkpoints[0])
    oldest = _linear_weights(projector.state_dict())
    projector.update(checkpoints[1])
    previous = _linear_weights(projector.state_dict())
    projector.lr = 1e-12
    projector.update(checkpoints[2])  # its memory holds checkpoints 1 and 0
    started = _linear_weights(projector.state_dict())
    for name, value in started.items():
        assert np.allclose(value, previous[name], atol=1e-8), name
    assert any(not np.allclose(started[name], oldest[name], atol=1e-3) for name in started)


def test_resume_from_a_history_continues_exactly():
    checkpoints = _digits_run()
    projector = SentryCamProjector(seed=0, **FAST)
    frames = [projector.update(c) for c in checkpoints[:2]]
    state = projector.state_dict()
    expected = projector.update(checkpoints[2])
    resumed = make_projector("sentrycam", seed=0, **FAST)
    resumed.resume(_History(checkpoints, frames), state)
    assert resumed.last_index == 1 and len(resumed.memory) == 2
    frame = resumed.update(checkpoints[2])
    assert np.array_equal(frame.embedding, expected.embedding)
    assert np.array_equal(frame.background.classes, expected.background.classes)
    without_weights = SentryCamProjector(seed=0, **FAST)
    without_weights.resume(_History(checkpoints, frames), None)
    assert without_weights.update(checkpoints[2]).embedding.shape == (1797, 2)


def test_the_graph_covers_every_point_and_the_spec_method_only_the_sample():
    checkpoint = _digits_run()[0]
    default = SentryCamProjector(seed=0, min_samples=300, **FAST)
    spec = make_projector("sentrycam-spec", seed=0, min_samples=300, **FAST)
    frame, spec_frame = default.update(checkpoint), spec.update(checkpoint)
    assert spec_frame.method == "sentrycam-spec"
    assert spec_frame.metrics["sample_size"] < 1797
    assert frame.metrics["graph_points"] == 1797
    assert spec_frame.metrics["graph_points"] == spec_frame.metrics["sample_size"]
    assert default.knn_indices.shape == (1797, 15) and spec.knn_indices is None


def test_the_shown_frame_is_the_refined_one_and_the_decoder_describes_it():
    checkpoint = _digits_run()[-1]
    projector, frames = _run()
    frame = frames[-1]
    # the encoder alone places the points elsewhere: the refinement moved them
    assert not np.allclose(projector._encode_all(checkpoint), frame.embedding, atol=1e-3)
    assert {"refinement", "decoder"} <= set(frame.timings)
    with torch.no_grad():
        decoded = projector.model.decode(torch.from_numpy(frame.embedding))
    expected = checkpoint.head.forward_torch(decoded).argmax(1).numpy()
    assert np.array_equal(frame.recon_pred, expected)
    # the SPEC method shows the encoder's output itself, and has no refinement stage
    spec = make_projector("sentrycam-spec", seed=0, **FAST)
    spec_frame = spec.update(_digits_run()[0])
    assert np.array_equal(spec_frame.embedding, spec._encode_all(_digits_run()[0]))
    assert "refinement" not in spec_frame.timings


def test_nn_descent_is_warm_started_from_the_previous_graph_and_resumes_with_it():
    checkpoints = _digits_run()
    projector = SentryCamProjector(seed=0, exact_max_points=500, pca_dims=16, **FAST)
    f0 = projector.update(checkpoints[0])
    first = projector.knn_indices.copy()
    frame = projector.update(checkpoints[1])
    assert frame.metrics["graph_points"] == 1797
    assert np.array_equal(projector.state_dict()["knn_indices"], projector.knn_indices)
    # consecutive checkpoints' graphs are close, and the warm start carries that over
    overlap = np.mean([np.isin(first[i], projector.knn_indices[i]).mean() for i in range(1797)])
    assert overlap > 0.5
    resumed = SentryCamProjector(seed=0, exact_max_points=500, pca_dims=16, **FAST)
    resumed.resume(_History(checkpoints, [f0, frame]), projector.state_dict())
    assert np.array_equal(resumed.knn_indices, projector.knn_indices)
    assert np.array_equal(resumed.pca_basis, projector.pca_basis)
    assert np.array_equal(resumed.previous, frame.embedding)
    # the search view's basis is warm-started too, so a resumed run goes on identically
    np.testing.assert_array_equal(
        resumed.update(checkpoints[2]).embedding, projector.update(checkpoints[2]).embedding
    )
    history = _History(checkpoints, [f0, frame])
    bad = {**projector.state_dict(), "knn_indices": projector.knn_indices[:10]}
    with pytest.raises(RunFormatError, match="kNN graph"):
        SentryCamProjector(seed=0, **FAST).resume(history, bad)
    bad = {**projector.state_dict(), "pca_basis": projector.pca_basis[:, :3]}
    with pytest.raises(RunFormatError, match="PCA basis"):
        SentryCamProjector(seed=0, pca_dims=16, **FAST).resume(history, bad)


def test_checkpoints_without_a_head_get_frames_without_background():
    checkpoint = _digits_run()[0]
    bare = Checkpoint(0, 1, checkpoint.features, checkpoint.labels)
    frame = SentryCamProjector(seed=0, **FAST).update(bare)
    assert frame.background is None and frame.recon_pred is None
    assert frame.embedding.shape == (1797, 2)


def test_changing_feature_dimension_or_probe_size_or_order_is_rejected():
    checkpoint = _digits_run()[0]
    projector = SentryCamProjector(seed=0, **FAST)
    projector.update(checkpoint)
    wider = Checkpoint(
        1, 2, np.hstack([checkpoint.features, checkpoint.features]), checkpoint.labels
    )
    with pytest.raises(InputError, match="feature dimension 64"):
        projector.update(wider)
    fewer = Checkpoint(1, 2, checkpoint.features[:1000], checkpoint.labels[:1000])
    with pytest.raises(InputError, match="1000 probe points"):
        projector.update(fewer)
    with pytest.raises(InputError, match="increasing"):
        projector.update(checkpoint)


def test_bad_options_are_rejected():
    with pytest.raises(InputError, match="device"):
        SentryCamProjector(device="tpu")
    with pytest.raises(InputError, match="resolution"):
        SentryCamProjector(resolution=1)
    with pytest.raises(InputError, match="all-point graph"):
        SentryCamProjector(graph="sample", refine_epochs=10)
    with pytest.raises(InputError, match="graph must be"):
        SentryCamProjector(graph="some")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_projection_matches_the_cpu_layout_quality():
    from sklearn.manifold import trustworthiness

    checkpoints = _digits_run()
    projector = SentryCamProjector(seed=0, device="cuda", **FAST)
    frames = [projector.update(c) for c in checkpoints]
    assert next(projector.model.parameters()).is_cuda
    assert frames[-1].background is not None and frames[-1].recon_pred.shape == (1797,)
    assert trustworthiness(checkpoints[-1].features, frames[-1].embedding, n_neighbors=15) > 0.85


def test_cuda_is_refused_clearly_when_absent():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(InputError, match="CUDA"):
        SentryCamProjector(device="cuda")
    assert SentryCamProjector(device="auto").device.type == "cpu"
