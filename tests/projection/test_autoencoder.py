"""The projector network: GN-BN hybrid placement, mirrored widths, seeded init, BN recalibration."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sentrycam_widget.errors import InputError
from sentrycam_widget.projection.autoencoder import (
    Autoencoder,
    GroupBatchNorm,
    default_widths,
    recalibrate_batchnorm,
)


def _norms(stack: nn.Sequential) -> list[nn.Module]:
    return [block[1] for block in stack if isinstance(block, nn.Sequential)]


def test_first_hidden_blocks_use_the_gn_bn_hybrid_and_the_rest_batchnorm():
    model = Autoencoder(512)
    for stack in (model.encoder, model.decoder):
        norms = _norms(stack)
        assert len(norms) == 4
        first = norms[0]
        assert isinstance(first, GroupBatchNorm)
        assert first.group.num_groups == 8 and not first.group.affine
        assert first.batch.affine and first.batch.track_running_stats
        assert all(type(norm) is nn.BatchNorm1d for norm in norms[1:])
        assert all(isinstance(block[2], nn.ReLU) for block in stack[:-1])
        assert isinstance(stack[-1], nn.Linear)  # plain output layer


def test_reference_widths_at_512_and_scaled_widths_elsewhere():
    assert default_widths(512) == [256, 128, 64, 32]
    model = Autoencoder(512)
    linears = [m for m in model.encoder.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (512, 256),
        (256, 128),
        (128, 64),
        (64, 32),
        (32, 2),
    ]
    decoder = [m for m in model.decoder.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in decoder] == [
        (2, 32),
        (32, 64),
        (64, 128),
        (128, 256),
        (256, 512),
    ]
    for dim in (16, 64, 100, 256, 2048):
        widths = default_widths(dim)
        assert all(w % 8 == 0 and w >= 32 for w in widths)
        assert Autoencoder(dim)(torch.randn(8, dim))[1].shape == (8, dim)


def test_initialisation_follows_the_generator_only():
    a = Autoencoder(64, generator=torch.Generator().manual_seed(1))
    b = Autoencoder(64, generator=torch.Generator().manual_seed(1))
    c = Autoencoder(64, generator=torch.Generator().manual_seed(2))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not all(
        torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(), strict=True)
    )


def test_recalibration_sets_running_statistics_to_the_inputs():
    model = Autoencoder(64).eval()
    x = 3.0 + 2.0 * torch.randn(500, 64)
    recalibrate_batchnorm(model, x)
    first = model.encoder[0]
    hidden = first[1].group(first[0](x))
    assert torch.allclose(first[1].batch.running_mean, hidden.mean(0), atol=1e-4)
    assert not model.training
    assert first[1].batch.momentum == pytest.approx(0.1)


def test_bad_dimensions_are_rejected():
    with pytest.raises(InputError, match="divisible"):
        GroupBatchNorm(12)
    with pytest.raises(InputError, match="dimension"):
        Autoencoder(0)
