"""Recording checkpoints from a real torch model: layer choice, head copy, state restore, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sentrycam_widget.capture import (
    Recorder,
    capture_checkpoint,
    checkpoint_from_arrays,
    resolve_layer,
)
from sentrycam_widget.errors import InputError
from sentrycam_widget.probe import ProbeSet, images_from_inputs
from sentrycam_widget.records import LinearHead, TorchHead


class SmallCNN(nn.Module):
    """Conv features -> flatten -> MLP head; the last Linear is ``classifier``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.hidden = nn.Linear(4 * 8 * 8, 16)
        self.classifier = nn.Linear(16, 3)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(torch.relu(self.norm(self.conv(x))))
        return torch.relu(self.hidden(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.penultimate(x))


@pytest.fixture
def model() -> SmallCNN:
    torch.manual_seed(0)
    net = SmallCNN()
    net.train()
    for _ in range(3):  # give BatchNorm non-trivial running statistics
        net(torch.randn(16, 1, 8, 8))
    return net


@pytest.fixture
def probe() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(37, 1, 8, 8, generator=generator), torch.arange(37) % 3


def reference_forward(net: SmallCNN, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    net.eval()
    with torch.no_grad():
        return net.penultimate(x).numpy(), net(x).numpy()


def test_default_layer_is_the_input_of_the_last_linear(model, probe):
    checkpoint = capture_checkpoint(model, probe, index=0, epoch=3, batch_size=10)
    expected_features, expected_logits = reference_forward(model, probe[0])
    np.testing.assert_allclose(checkpoint.features, expected_features, atol=1e-5)
    np.testing.assert_allclose(checkpoint.logits, expected_logits, atol=1e-5)
    assert checkpoint.features.dtype == np.float32 and checkpoint.features.shape == (37, 16)
    assert isinstance(checkpoint.head, LinearHead)
    np.testing.assert_allclose(checkpoint.head(checkpoint.features), expected_logits, atol=1e-5)
    assert checkpoint.epoch == 3 and list(checkpoint.labels) == list(np.arange(37) % 3)


def test_named_layer_output_is_flattened_and_needs_a_head(model, probe):
    with pytest.raises(InputError, match="pass head="):
        capture_checkpoint(model, probe, index=0, epoch=0, layer="conv")
    head = nn.Sequential(nn.Unflatten(1, (4, 8, 8)), model.norm, nn.ReLU(), nn.Flatten())
    head.append(nn.Sequential(model.hidden, nn.ReLU(), model.classifier))
    checkpoint = capture_checkpoint(model, probe, index=0, epoch=0, layer="conv", head=head)
    model.eval()
    with torch.no_grad():
        expected = model.conv(probe[0]).flatten(1).numpy()
    np.testing.assert_allclose(checkpoint.features, expected, atol=1e-5)
    assert isinstance(checkpoint.head, TorchHead)
    np.testing.assert_allclose(checkpoint.head(checkpoint.features), checkpoint.logits, atol=1e-4)


def test_module_object_as_layer(model, probe):
    module, name, use_input = resolve_layer(model, model.hidden)
    assert module is model.hidden and name == "hidden" and use_input is False
    assert resolve_layer(model, None)[1:] == ("classifier", True)
    head = nn.Sequential(nn.ReLU(), model.classifier)
    checkpoint = capture_checkpoint(model, probe, index=0, epoch=0, layer=model.hidden, head=head)
    model.eval()
    with torch.no_grad():
        h = model.drop(torch.relu(model.norm(model.conv(probe[0]))))
        expected = model.hidden(h.flatten(1)).numpy()
    np.testing.assert_allclose(checkpoint.features, expected, atol=1e-5)
    with pytest.raises(InputError, match="not a submodule"):
        resolve_layer(model, nn.Linear(2, 2))


def test_train_eval_flags_restored_per_module(model, probe):
    model.train()
    model.drop.eval()  # a mixed state the user set on purpose
    before = {name: m.training for name, m in model.named_modules()}
    seen_training: list[bool] = []
    handle = model.norm.register_forward_hook(lambda m, i, o: seen_training.append(m.training))
    capture_checkpoint(model, probe, index=0, epoch=0)
    handle.remove()
    assert seen_training and not any(seen_training)  # captured in eval mode
    assert {name: m.training for name, m in model.named_modules()} == before
    running_mean = model.norm.running_mean.clone()
    capture_checkpoint(model, probe, index=1, epoch=1)
    assert torch.equal(model.norm.running_mean, running_mean)  # eval: statistics untouched


def test_hook_removed_and_state_restored_after_an_error(model, probe):
    model.train()

    def explode(module, inputs, output):
        raise RuntimeError("boom")

    handle = model.hidden.register_forward_hook(explode)
    with pytest.raises(RuntimeError, match="boom"):
        capture_checkpoint(model, probe, index=0, epoch=0)
    handle.remove()
    assert len(model.classifier._forward_hooks) == 0
    assert all(m.training for m in model.modules())


def test_head_is_a_copy(model, probe):
    checkpoint = capture_checkpoint(model, probe, index=0, epoch=0)
    weight = checkpoint.head.weight.copy()
    with torch.no_grad():
        model.classifier.weight.add_(1.0)
    np.testing.assert_array_equal(checkpoint.head.weight, weight)
    torch_head = nn.Sequential(nn.ReLU(), model.classifier)
    recorded = capture_checkpoint(
        model, probe, index=1, epoch=1, layer="hidden", head=torch_head
    ).head
    before = recorded(np.ones((2, 16), np.float32))
    with torch.no_grad():
        model.classifier.bias.add_(5.0)
    np.testing.assert_array_equal(recorded(np.ones((2, 16), np.float32)), before)
    assert not any(p.requires_grad for p in recorded.module.parameters())


def test_dataloader_probe_is_read_once_in_a_fixed_order(model, probe):
    dataset = torch.utils.data.TensorDataset(*probe)
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=True)
    probe_set = ProbeSet.from_any(loader)
    assert probe_set.n_points == 37
    recorder = Recorder(model, probe_set, batch_size=16)
    first = recorder.capture(index=0, epoch=0)
    second = recorder.capture(index=1, epoch=1)
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_allclose(first.features, second.features)
    order = np.argsort(probe_set.inputs[:, 0, 0, 0].numpy())
    reference = np.argsort(probe[0][:, 0, 0, 0].numpy())
    np.testing.assert_array_equal(probe_set.labels[order], probe[1].numpy()[reference])


def test_numpy_probe_and_thumbnails():
    x = np.random.default_rng(0).uniform(0, 16, size=(10, 1, 8, 8))  # float64, like sklearn digits
    probe_set = ProbeSet.from_any((x, np.arange(10) % 2), images=images_from_inputs(x))
    assert probe_set.inputs.dtype == torch.float32
    assert probe_set.images.shape == (10, 8, 8) and probe_set.images.dtype == np.uint8
    assert probe_set.images.max() == 255 and probe_set.images.min() == 0
    assert probe_set.describe()["input_shape"] == [1, 8, 8]
    with pytest.raises(InputError, match="thumbnails"):
        images_from_inputs(np.zeros((10, 5)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_model_returns_cpu_float32(model, probe):
    model = model.cuda()
    checkpoint = capture_checkpoint(model, probe, index=0, epoch=0)
    torch_head = nn.Sequential(nn.ReLU(), model.classifier)
    hidden = capture_checkpoint(model, probe, index=1, epoch=0, layer="hidden", head=torch_head)
    assert next(model.parameters()).is_cuda  # the model stays where it was
    expected_features, expected_logits = reference_forward(model.cpu(), probe[0])
    np.testing.assert_allclose(checkpoint.features, expected_features, atol=1e-4)
    np.testing.assert_allclose(checkpoint.logits, expected_logits, atol=1e-4)
    assert checkpoint.features.dtype == np.float32 and isinstance(checkpoint.features, np.ndarray)
    np.testing.assert_allclose(hidden.head(hidden.features), expected_logits, atol=1e-4)
    assert not next(hidden.head.module.parameters()).is_cuda


def test_unknown_layer_lists_available_names(model, probe):
    with pytest.raises(InputError, match=r"no layer named 'hiden'.*'hidden'.*classifier"):
        capture_checkpoint(model, probe, index=0, epoch=0, layer="hiden")


def test_bad_probes_fail_fast(model, probe):
    x, y = probe
    bad = x.clone()
    bad[3, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="probe inputs contain 1 NaN"):
        Recorder(model, (bad, y))
    with pytest.raises(InputError, match="labels must be 1-D"):
        Recorder(model, (x, y.reshape(-1, 1)))
    with pytest.raises(InputError, match="only one class"):
        Recorder(model, (x, torch.zeros(37, dtype=torch.long)))
    with pytest.raises(InputError, match="disagree"):
        Recorder(model, (x, y[:-1]))
    with pytest.raises(InputError, match="integer class indices"):
        ProbeSet.from_any((x, y.float() + 0.5))
    with pytest.raises(InputError, match="DataLoader"):
        ProbeSet.from_any(x)


def test_head_dimension_mismatch(model, probe):
    with pytest.raises(InputError, match="expects 5 input features but layer 'hidden' gives 16"):
        capture_checkpoint(model, probe, index=0, epoch=0, layer="hidden", head=nn.Linear(5, 3))
    with pytest.raises(InputError, match="cannot be applied"):
        head = nn.Sequential(nn.ReLU(), nn.Linear(7, 3))
        capture_checkpoint(model, probe, index=0, epoch=0, layer="hidden", head=head)
    with pytest.raises(InputError, match="expects 4 input features"):
        checkpoint_from_arrays(0, 0, np.zeros((4, 3)), [0, 1, 0, 1], head_W=np.zeros((2, 4)))


def test_checkpoint_from_arrays_computes_logits_from_the_head():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(20, 6))
    weight, bias = rng.normal(size=(4, 6)), rng.normal(size=4)
    checkpoint = checkpoint_from_arrays(
        2, 7, features, np.arange(20) % 4, head_W=weight, head_b=bias, scalars={"val_loss": 0.3}
    )
    np.testing.assert_allclose(checkpoint.logits, features @ weight.T + bias, atol=1e-5)
    assert checkpoint.features.dtype == np.float32 and checkpoint.scalars == {"val_loss": 0.3}
    no_bias = checkpoint_from_arrays(0, 0, features, np.arange(20) % 4, head_W=weight)
    np.testing.assert_allclose(no_bias.logits, features @ weight.T, atol=1e-5)
    plain = checkpoint_from_arrays(0, 0, features, np.arange(20) % 4)
    assert plain.head is None and plain.logits is None
    with pytest.raises(InputError, match="head_b was given without head_W"):
        checkpoint_from_arrays(0, 0, features, np.arange(20) % 4, head_b=bias)
    with pytest.raises(InputError, match="head has 4 classes but the logits"):
        checkpoint_from_arrays(
            0, 0, features, np.arange(20) % 4, logits=np.zeros((20, 3)), head_W=weight
        )
    bad = features.copy()
    bad[0, 0] = np.inf
    with pytest.raises(InputError, match="NaN/inf"):
        checkpoint_from_arrays(0, 0, bad, np.arange(20) % 4)
    with pytest.raises(InputError, match=r"features must be \[N, D\]"):
        checkpoint_from_arrays(0, 0, features[0], np.arange(20) % 4)


def test_recorder_follows_the_model_when_its_dtype_changes(model, probe):
    recorder = Recorder(model, probe)
    first = recorder.capture(index=0, epoch=0)
    model.double()
    second = recorder.capture(index=1, epoch=1)
    assert second.features.dtype == np.float32
    np.testing.assert_allclose(second.features, first.features, atol=1e-5)
