"""The projector network (SPEC §2.4): an MLP autoencoder D → … → 2 → … → D with a GN-BN hybrid.

Hidden blocks are Linear → Norm → ReLU, output layers plain Linear. The first hidden block of
the encoder and of the decoder normalises with GroupNorm(8, no affine) followed by BatchNorm
(running statistics, affine) — per-sample group normalisation keeps the first layer robust to
the checkpoint-to-checkpoint shift of input statistics; the other hidden blocks use BatchNorm.
Weights are initialised from an explicit ``torch.Generator`` so construction never touches
torch's global random state. Shared with the DVI baseline.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from ..errors import InputError

GROUPS = 8


class GroupBatchNorm(nn.Module):
    """The GN-BN hybrid ("continual normalisation"): GroupNorm(8, no affine) then BatchNorm."""

    def __init__(self, width: int, groups: int = GROUPS) -> None:
        super().__init__()
        if width % groups:
            raise InputError(f"GN-BN width {width} must be divisible by {groups} groups")
        self.group = nn.GroupNorm(groups, width, affine=False)
        self.batch = nn.BatchNorm1d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.batch(self.group(x))


def default_widths(in_dim: int) -> list[int]:
    """Hidden widths of the encoder (decoder mirrored): the reference's 256-128-64-32 at D=512.

    The first width halves the input like the reference's 512 → 256 (rounded to a multiple of 8,
    clipped to [64, 256]); the next ones halve again, never below 32.
    """
    first = min(256, max(64, 8 * round(in_dim / 16)))
    return [first, max(32, first // 2), max(32, first // 4), 32]


def _block(width_in: int, width_out: int, hybrid: bool) -> nn.Sequential:
    norm = GroupBatchNorm(width_out) if hybrid else nn.BatchNorm1d(width_out)
    return nn.Sequential(nn.utils.skip_init(nn.Linear, width_in, width_out), norm, nn.ReLU())


def _stack(widths: list[int]) -> nn.Sequential:
    """Hidden blocks over consecutive widths (the first with the GN-BN hybrid), then a Linear."""
    blocks = [_block(widths[0], widths[1], hybrid=True)]
    blocks += [_block(a, b, hybrid=False) for a, b in itertools.pairwise(widths[1:-1])]
    blocks.append(nn.utils.skip_init(nn.Linear, widths[-2], widths[-1]))
    return nn.Sequential(*blocks)


class Autoencoder(nn.Module):
    """Encoder ``in_dim → widths → 2`` and the mirrored decoder ``2 → reversed(widths) → in_dim``."""

    def __init__(
        self,
        in_dim: int,
        widths: list[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if in_dim < 1:
            raise InputError(f"input dimension must be positive, got {in_dim}")
        self.in_dim = in_dim
        self.widths = list(widths) if widths is not None else default_widths(in_dim)
        self.encoder = _stack([in_dim, *self.widths, 2])
        self.decoder = _stack([2, *reversed(self.widths), in_dim])
        self.reset_parameters(generator if generator is not None else torch.Generator())

    def reset_parameters(self, generator: torch.Generator) -> None:
        """torch's default Linear initialisation, drawn from ``generator``; norms to identity."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                bound = 1.0 / math.sqrt(module.in_features)
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            elif isinstance(module, nn.BatchNorm1d):
                module.reset_parameters()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        return self.decoder(y)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.encoder(x)
        return y, self.decoder(y)


@torch.no_grad()
def recalibrate_batchnorm(module: nn.Module, inputs: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to those of ``inputs`` in one train-mode pass.

    A short fine-tune leaves running statistics lagging behind the weights; recomputing them on
    the training nodes makes the eval-mode projection match what the losses optimised.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm1d)]
    momenta = [m.momentum for m in norms]
    was_training = module.training
    module.train()
    for m in norms:
        m.momentum = 1.0
    module(inputs)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    module.train(was_training)
