"""Conformance test: every registered projection method honours the Projector protocol.

Parametrised over ``available_methods()``, so a method added to the registry is checked here
without touching this file. The checkpoints are three small drifting Gaussian-mixture probe sets
with a real linear head (nearest-centroid logits), so methods with an inverse can paint a
background and predict on reconstructions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sentrycam_widget.errors import InputError
from sentrycam_widget.projection import (
    Projector,
    available_methods,
    make_projector,
    register_method,
)
from sentrycam_widget.records import Checkpoint, Frame, LinearHead
from sentrycam_widget.store import RunStore

_BASELINES = {
    "umap": "sentrycam_widget.projection.umap:UMAPProjector",
    "umap-independent": "sentrycam_widget.projection.umap:IndependentUMAPProjector",
    "dvi": "sentrycam_widget.projection.dvi:DVIProjector",
}
for _name, _target in _BASELINES.items():
    if _name not in available_methods():
        register_method(_name, _target)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("one_torch_thread"),
]  # one UMAP JIT warm-up and ~40 small fits: about a minute

N_POINTS, N_FEATURES, N_CLASSES, N_CHECKPOINTS = 240, 16, 3, 3


def _drifting_checkpoints() -> list[Checkpoint]:
    """Three checkpoints whose class clusters separate over time, each with its own head."""
    rng = np.random.default_rng(7)
    labels = np.repeat(np.arange(N_CLASSES), N_POINTS // N_CLASSES)
    directions = rng.normal(size=(N_CLASSES, N_FEATURES))
    noise = rng.normal(size=(N_POINTS, N_FEATURES))
    checkpoints = []
    for index in range(N_CHECKPOINTS):
        centres = (1.5 + index) * directions
        features = (centres[labels] + noise + 0.1 * index).astype(np.float32)
        head = LinearHead(centres, -0.5 * (centres**2).sum(axis=1))
        checkpoints.append(Checkpoint(index, 10 * index, features, labels, head=head))
    return checkpoints


# Small budgets: this test checks the protocol, not faithfulness (see each method's own tests).
_FAST_OPTIONS: dict[str, dict[str, Any]] = {
    "sentrycam": {"cold_steps": 30, "warm_steps": 10, "resolution": 24},
    "sentrycam-spec": {"cold_steps": 30, "warm_steps": 10, "resolution": 24},
    "dvi": {"cold_epochs": 4, "warm_epochs": 2, "resolution": 24},
    "umap": {"n_epochs": 100},
    "umap-independent": {"n_epochs": 100},
    "umap-unseeded": {"n_epochs": 100},
}
# umap-unseeded runs umap-learn without a seed on all cores: fast, not reproducible
_DETERMINISTIC = [m for m in available_methods() if m != "umap-unseeded"]


def _projector(method: str) -> Projector:
    return make_projector(method, seed=0, **_FAST_OPTIONS.get(method, {}))


def _run(method: str, checkpoints: list[Checkpoint]) -> list[Frame]:
    projector = _projector(method)
    return [projector.update(checkpoint) for checkpoint in checkpoints]


@pytest.fixture(scope="module")
def checkpoints() -> list[Checkpoint]:
    return _drifting_checkpoints()


class _Runs(dict):
    """One seeded run per method, made on first use and shared by the tests below."""

    def __init__(self, checkpoints: list[Checkpoint]) -> None:
        super().__init__()
        self.checkpoints = checkpoints

    def __missing__(self, method: str) -> list[Frame]:
        self[method] = _run(method, self.checkpoints)
        return self[method]


@pytest.fixture(scope="module")
def runs(checkpoints: list[Checkpoint]) -> _Runs:
    return _Runs(checkpoints)


def test_the_baselines_are_registered() -> None:
    assert {"sentrycam", "umap", "umap-independent", "dvi"} <= set(available_methods())


@pytest.mark.parametrize("method", available_methods())
def test_frames_carry_method_index_epoch_and_a_finite_float32_layout(
    method: str, runs: _Runs, checkpoints: list[Checkpoint]
) -> None:
    frames = runs[method]
    assert [f.method for f in frames] == [method] * N_CHECKPOINTS
    assert [f.index for f in frames] == [c.index for c in checkpoints]
    assert [f.epoch for f in frames] == [c.epoch for c in checkpoints]
    for frame in frames:
        assert frame.embedding.shape == (N_POINTS, 2)
        assert frame.embedding.dtype == np.float32
        assert np.isfinite(frame.embedding).all()
        assert frame.embedding.std(axis=0).min() > 0, "a collapsed layout is not a projection"
        assert frame.timings and all(v >= 0 for v in frame.timings.values())


@pytest.mark.parametrize("method", available_methods())
def test_background_and_reconstruction_exist_exactly_when_the_method_has_an_inverse(
    method: str, runs: _Runs
) -> None:
    has_inverse = _projector(method).has_inverse
    for frame in runs[method]:
        assert (frame.background is not None) == has_inverse
        assert (frame.recon_pred is not None) == has_inverse
        if has_inverse:
            assert frame.recon_pred.shape == (N_POINTS,)
            assert frame.recon_pred.min() >= 0 and frame.recon_pred.max() < N_CLASSES
            assert frame.background.classes.max() < N_CLASSES
            x0, x1, y0, y1 = frame.background.extent
            assert x0 < frame.embedding[:, 0].min() and frame.embedding[:, 0].max() < x1
            assert y0 < frame.embedding[:, 1].min() and frame.embedding[:, 1].max() < y1


@pytest.mark.parametrize("method", _DETERMINISTIC)
def test_a_fixed_seed_gives_the_same_frames(
    method: str, runs: _Runs, checkpoints: list[Checkpoint]
) -> None:
    again = _run(method, checkpoints)
    for first, second in zip(runs[method], again, strict=True):
        np.testing.assert_array_equal(first.embedding, second.embedding)


@pytest.mark.parametrize("method", _DETERMINISTIC)
def test_state_dict_and_resume_continue_the_run_from_a_run_directory(
    method: str, runs: _Runs, checkpoints: list[Checkpoint], tmp_path: Path
) -> None:
    """Stop after two checkpoints, reopen the run in a "new process", and finish it identically."""
    store = RunStore.create(tmp_path / "run", checkpoints[0].labels)
    first = _projector(method)
    for checkpoint in checkpoints[:-1]:
        store.append_checkpoint(checkpoint)
        frame = first.update(checkpoint)
        store.append_frame(frame)
        store.save_projector_state(method, frame.index, first.state_dict())

    reopened = RunStore.open(tmp_path / "run")
    saved = reopened.load_projector_state(method)
    assert saved is not None and saved[0] == checkpoints[-2].index
    resumed = _projector(method)
    resumed.resume(reopened, saved[1])
    frame = resumed.update(checkpoints[-1])

    assert (frame.index, frame.epoch) == (checkpoints[-1].index, checkpoints[-1].epoch)
    np.testing.assert_allclose(frame.embedding, runs[method][-1].embedding, rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", available_methods())
def test_checkpoints_out_of_order_are_refused(method: str, checkpoints: list[Checkpoint]) -> None:
    projector = _projector(method)
    projector.update(checkpoints[1])
    with pytest.raises(InputError):
        projector.update(checkpoints[0])
