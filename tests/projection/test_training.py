"""The shared optimisation schedule of the autoencoder projectors (``_training.optimise``)."""

from __future__ import annotations

import itertools

import pytest
import torch

from sentrycam_widget.projection._training import Plateau, optimise

LR = 0.1


def _run(max_steps: int, plateau: Plateau) -> tuple[int, list[float], float]:
    """Optimise one weight whose loss has a constant gradient, so each Adam step moves it by
    exactly the current learning rate; the loss *value* stays 1.0 (a plateau from the start)."""
    model = torch.nn.Linear(1, 1, bias=False)
    values: list[float] = []

    def step_loss(_step: int) -> torch.Tensor:
        values.append(float(model.weight.detach()))
        w = model.weight.sum()
        return w - w.detach() + 1.0

    steps, last = optimise(
        model,
        step_loss,
        max_steps=max_steps,
        lr=LR,
        weight_decay=0.0,
        decay_at=0.7,
        plateau=plateau,
    )
    values.append(float(model.weight.detach()))
    moves = [abs(b - a) for a, b in itertools.pairwise(values)]
    return steps, moves, last


def test_lr_drops_tenfold_for_the_last_30_percent_without_a_plateau():
    steps, moves, last = _run(10, Plateau(window=1000, patience=2, min_improvement=0.01))
    assert steps == 10 and last == 1.0
    assert moves[:7] == pytest.approx([LR] * 7, rel=1e-3)
    assert moves[7:] == pytest.approx([LR / 10] * 3, rel=1e-3)


def test_a_plateau_brings_the_decay_forward_and_a_second_one_stops():
    # windows of 2 steps, patience 1: the flat loss plateaus at step 4 (decay at 14 of 20 is
    # brought forward), then again at step 6, after the decay: stop there
    steps, moves, _ = _run(20, Plateau(window=2, patience=1, min_improvement=0.01))
    assert steps == 6
    assert moves[:4] == pytest.approx([LR] * 4, rel=1e-3)
    assert moves[4:] == pytest.approx([LR / 10] * 2, rel=1e-3)


def test_zero_steps_leaves_the_model_alone():
    steps, moves, last = _run(0, Plateau(window=2, patience=1, min_improvement=0.01))
    assert steps == 0 and moves == [] and last != last  # NaN: no loss was computed
