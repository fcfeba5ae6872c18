"""Shared by the integration tests and their DDP scripts: digits data, a Lightning module."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sentrycam_widget import demo

FAST = {"sentrycam": {"cold_steps": 60, "warm_steps": 20, "resolution": 40}}


def probe(data: demo.DigitsData, every: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ``every``-th digit of the fixed probe set (300 of 1,797 by default)."""
    idx = np.arange(0, len(data.y_probe), every)
    return data.x_probe[idx], data.y_probe[idx]


def loaders(
    data: demo.DigitsData, batch_size: int = 64, n_train: int = 512
) -> tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader]:
    """Train (first ``n_train`` digits, fixed order) and validation loaders."""
    train = torch.utils.data.TensorDataset(data.x_train[:n_train], data.y_train[:n_train])
    val = torch.utils.data.TensorDataset(data.x_val, data.y_val)
    return (
        torch.utils.data.DataLoader(train, batch_size=batch_size),
        torch.utils.data.DataLoader(val, batch_size=256),
    )


def lightning_module(lr: float = 1e-3):
    """A LightningModule around the demo's digits CNN that logs ``val_loss``."""
    import lightning.pytorch as pl

    class DigitsModule(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = demo.make_model(0, demo.DigitsCNN)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch, _index):
            x, y = batch
            loss = F.cross_entropy(self(x), y)
            self.log("train_loss", loss, on_epoch=True, on_step=False, sync_dist=True)
            return loss

        def validation_step(self, batch, _index):
            x, y = batch
            self.log("val_loss", F.cross_entropy(self(x), y), sync_dist=True)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=lr)

    return DigitsModule()
