"""Real training runs to watch: a digits CNN (the demo) and a wide MLP (the benchmark's big run).

Everything here is deterministic given a seed and needs no download: the digits are
scikit-learn's bundled 8×8 images, the MLP's data comes from ``make_classification``. The pieces
(data, model, one epoch of training, evaluation) are reusable by notebooks, tests, the live widget
and the alert case studies (``lr`` makes a run fail; ``classes`` trains on a subset of digits).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .errors import InputError


@dataclass(frozen=True)
class DigitsData:
    """Train/validation split of the 1,797 digits plus the fixed probe set (all images).

    Images are float32 [N, 1, 8, 8] in [0, 1]; ``thumbnails`` are the probe images as uint8
    [N, 8, 8] (0 = background, 255 = ink) for the widget's hover.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_probe: torch.Tensor
    y_probe: torch.Tensor
    thumbnails: np.ndarray

    def restricted_to(self, classes: Sequence[int]) -> DigitsData:
        """The same split with train/val limited to ``classes``; the probe set stays complete."""
        keep = torch.as_tensor(sorted(set(classes)))
        if keep.numel() == 0 or keep.min() < 0 or keep.max() > 9:
            raise InputError(f"classes must be digits 0-9, got {list(classes)}")
        train = torch.isin(self.y_train, keep)
        val = torch.isin(self.y_val, keep)
        return DigitsData(
            self.x_train[train],
            self.y_train[train],
            self.x_val[val],
            self.y_val[val],
            self.x_probe,
            self.y_probe,
            self.thumbnails,
        )


def digits_data(seed: int = 0, val_fraction: float = 0.25) -> DigitsData:
    """Load scikit-learn's digits and split them (stratified, seeded) into train and validation."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    labels = digits.target.astype(np.int64)
    idx_train, idx_val = train_test_split(
        np.arange(len(labels)), test_size=val_fraction, random_state=seed, stratify=labels
    )
    x = torch.from_numpy(images)
    y = torch.from_numpy(labels)
    thumbnails = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return DigitsData(x[idx_train], y[idx_train], x[idx_val], y[idx_val], x, y, thumbnails)


class DigitsCNN(nn.Module):
    """Conv(1→16,3)→ReLU→Conv(16→32,3)→ReLU→Linear(512→64)→ReLU→Linear(64→10).

    The 64-d input of the last Linear layer (``self.head``) is what SentryCam shows.
    """

    def __init__(self, n_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, width),
            nn.ReLU(),
        )
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class WideMLP(nn.Module):
    """Linear(D→width)→ReLU→Linear(width→width)→ReLU→Linear(width→C); penultimate = ``width``."""

    def __init__(self, n_features: int, n_classes: int, width: int = 256) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Linear(n_features, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
        )
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def make_model(seed: int, factory: Callable[[], nn.Module]) -> nn.Module:
    """Build a model with weights fixed by ``seed`` (torch's global RNG is restored afterwards)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


def make_optimizer(model: nn.Module, lr: float = 1e-3) -> torch.optim.Optimizer:
    """Adam at ``lr``; a large ``lr`` (e.g. 0.05 on the digits CNN) makes training fail."""
    return torch.optim.Adam(model.parameters(), lr=lr)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 64,
    seed: int = 0,
) -> float:
    """One pass over (x, y) in a seeded random order; returns the mean training loss."""
    model.train()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    total, count = 0.0, 0
    for start in range(0, len(y), batch_size):
        batch = order[start : start + batch_size]
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch)
        count += len(batch)
    return total / max(count, 1)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy) of ``model`` on (x, y), in eval mode, no grad."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = float(nn.functional.cross_entropy(logits, y))
        accuracy = float((logits.argmax(1) == y).float().mean())
    model.train(was_training)
    return loss, accuracy
