"""The demo's real training runs: data split, determinism, learning, class subsets."""

from __future__ import annotations

import pytest
import torch

from sentrycam_widget.demo import (
    DigitsCNN,
    digits_data,
    evaluate,
    make_model,
    make_optimizer,
    train_epoch,
)
from sentrycam_widget.errors import InputError


def test_digits_split_is_stratified_and_probe_is_every_image():
    data = digits_data(seed=0)
    assert len(data.y_train) + len(data.y_val) == 1797
    assert data.x_train.shape[1:] == (1, 8, 8)
    assert float(data.x_train.max()) == pytest.approx(1.0)
    assert len(data.y_probe) == 1797 and data.thumbnails.shape == (1797, 8, 8)
    assert data.thumbnails.dtype.name == "uint8" and data.thumbnails.max() == 255
    assert set(data.y_val.tolist()) == set(range(10))


def test_digits_cnn_learns_within_a_few_epochs():
    data = digits_data(seed=0)
    model = make_model(0, DigitsCNN)
    optimizer = make_optimizer(model)
    _, before = evaluate(model, data.x_val, data.y_val)
    for epoch in range(4):
        train_epoch(model, optimizer, data.x_train, data.y_train, seed=epoch)
    loss, after = evaluate(model, data.x_val, data.y_val)
    assert before < 0.3
    assert after > 0.8  # measured 0.87 after 4 epochs with seed 0
    assert loss < 1.0


def test_training_is_deterministic_given_seed():
    data = digits_data(seed=1)
    outputs = []
    for _ in range(2):
        model = make_model(3, DigitsCNN)
        train_epoch(model, make_optimizer(model), data.x_train, data.y_train, seed=5)
        outputs.append(model(data.x_probe[:50]).detach())
    assert torch.equal(outputs[0], outputs[1])


def test_class_subset_keeps_full_probe():
    data = digits_data(seed=0).restricted_to([0, 1, 2, 3, 4])
    assert set(data.y_train.tolist()) == {0, 1, 2, 3, 4}
    assert set(data.y_val.tolist()) == {0, 1, 2, 3, 4}
    assert len(data.y_probe) == 1797
    with pytest.raises(InputError, match="digits 0-9"):
        data.restricted_to([12])
