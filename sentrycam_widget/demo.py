"""Real training runs to watch: a digits CNN (the demo) and a wide MLP (the benchmark's big run).

Everything here is deterministic given a seed and needs no download: the digits are
scikit-learn's bundled 8×8 images, the MLP's data comes from ``make_classification``. The pieces
(data, model, one epoch of training, evaluation) are reusable by notebooks, tests, the live widget
and the alert case studies (``lr`` makes a run fail; ``classes`` trains on a subset of digits).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .errors import InputError

if TYPE_CHECKING:
    from .capture import Recorder
    from .records import Checkpoint, Frame
    from .store import RunStore


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


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` produced: the run directory, the contact sheet, per-epoch rows."""

    run_dir: Path | str
    contact_sheet: Path | str
    epochs: list[dict[str, float]]


CheckpointHook = Callable[["Checkpoint", "RunStore"], None]


def start_digits_recording(
    out_dir: str | Path, seed: int
) -> tuple[DigitsData, nn.Module, Recorder, RunStore]:
    """The digits split, a seeded CNN, its recorder on all 1,797 probe images and a new run."""
    from .capture import Recorder
    from .probe import ProbeSet
    from .store import RunStore

    data = digits_data(seed)
    model = make_model(seed, DigitsCNN)
    probe = ProbeSet(data.x_probe, data.y_probe.numpy(), data.thumbnails)
    recorder = Recorder(model, probe)
    store = RunStore.create(
        out_dir,
        probe.labels,
        class_names=[str(d) for d in range(10)],
        layer=recorder.layer_name,
        probe=probe.describe(),
        images=data.thumbnails,
    )
    return data, model, recorder, store


def record_digits_run(
    out_dir: str | Path,
    epochs: int = 12,
    seed: int = 0,
    lr: float = 1e-3,
    on_checkpoint: CheckpointHook | None = None,
) -> Path | str:
    """Train the digits CNN for ``epochs`` and record a checkpoint after each into ``out_dir``.

    The probe set is all 1,797 images (with uint8 thumbnails); each checkpoint carries
    ``train_loss``, ``val_loss`` and ``val_accuracy``. ``on_checkpoint(checkpoint, store)`` runs
    after each checkpoint is stored (the demo projects there). Returns the run directory.
    """
    data, model, recorder, store = start_digits_recording(out_dir, seed)
    _record_epochs(
        store,
        recorder,
        make_optimizer(model, lr),
        (data.x_train, data.y_train, data.x_val, data.y_val),
        epochs,
        seed,
        batch_size=64,
        on_checkpoint=on_checkpoint,
    )
    return store.path


def make_mlp_run(
    out_dir: str | Path,
    n_probe: int = 10_000,
    width: int = 256,
    epochs: int = 8,
    seed: int = 0,
    n_samples: int = 12_000,
    n_features: int = 64,
    n_classes: int = 10,
    on_checkpoint: CheckpointHook | None = None,
) -> Path:
    """Record a real MLP (penultimate ``width``) training on ``make_classification`` data.

    The last ``n_samples // 6`` samples are held out for validation; the probe set is the first
    ``n_probe`` samples (mostly training data). One checkpoint per epoch, with train/val loss.
    Returns the run directory (checkpoints only; no frames).
    """
    from .capture import Recorder
    from .probe import ProbeSet
    from .store import RunStore

    if not 2 <= n_probe <= n_samples:
        raise InputError(f"n_probe must be in [2, n_samples = {n_samples}], got {n_probe}")
    x, y = _generated_classification(n_samples, n_features, n_classes, seed)
    n_val = n_samples // 6
    model = make_model(seed, lambda: WideMLP(n_features, n_classes, width))
    probe = ProbeSet(x[:n_probe], y[:n_probe].numpy())
    recorder = Recorder(model, probe, batch_size=2048)
    store = RunStore.create(
        out_dir,
        probe.labels,
        n_classes=n_classes,
        layer=recorder.layer_name,
        probe=probe.describe(),
    )
    _record_epochs(
        store,
        recorder,
        make_optimizer(model),
        (x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]),
        epochs,
        seed,
        batch_size=128,
        on_checkpoint=on_checkpoint,
    )
    return store.path


def _record_epochs(
    store: RunStore,
    recorder: Recorder,
    optimizer: torch.optim.Optimizer,
    split: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    epochs: int,
    seed: int,
    batch_size: int,
    on_checkpoint: CheckpointHook | None,
) -> None:
    if epochs < 1:
        raise InputError(f"epochs must be >= 1, got {epochs}")
    x_train, y_train, x_val, y_val = split
    model = recorder.model
    for epoch in range(1, epochs + 1):
        train_loss = train_epoch(model, optimizer, x_train, y_train, batch_size, seed=seed + epoch)
        val_loss, val_accuracy = evaluate(model, x_val, y_val)
        scalars = {"train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_accuracy}
        checkpoint = recorder.capture(index=epoch - 1, epoch=epoch, scalars=scalars)
        store.append_checkpoint(checkpoint)
        if on_checkpoint is not None:
            on_checkpoint(checkpoint, store)


def run_demo(
    out_dir: str | Path,
    epochs: int = 12,
    seed: int = 0,
    progress: Callable[[str], None] | None = print,
    threads: int | None = 1,
) -> DemoResult:
    """Train the digits CNN, record and project (SentryCam) every epoch, write a contact sheet.

    Each epoch's line reports training/validation numbers, projection latency and faithfulness
    (trustworthiness, PPR, kNN preservation). ``threads`` caps torch's intra-op threads for
    training and projection (None: leave torch's setting).
    """
    from .pipeline import project_checkpoint, torch_threads
    from .projection import make_projector
    from .render import contact_sheet
    from .store import RunStore

    say = progress or (lambda _line: None)
    projector = make_projector("sentrycam", seed=seed)
    rows: list[dict[str, float]] = []
    frames: list[Frame] = []

    def project(checkpoint: Checkpoint, store: RunStore) -> None:
        frame = project_checkpoint(projector, checkpoint, store, threads=threads)
        rows.append(_epoch_row(checkpoint, frame))
        frames.append(frame)
        say(_format_row(rows[-1]))

    with torch_threads(threads):
        run_dir = record_digits_run(out_dir, epochs, seed, on_checkpoint=project)
    store = RunStore.open(run_dir)
    with tempfile.TemporaryDirectory() as scratch:  # the run may be at a URL: render, then store
        drawn = contact_sheet(
            frames,
            store.labels,
            [store.checkpoint(f.index).predictions for f in frames],
            Path(scratch) / "contact_sheet.png",
        )
        store.files.write_bytes("contact_sheet.png", drawn.read_bytes())
    sheet = store.files.where("contact_sheet.png")
    say(f"run directory: {run_dir}\ncontact sheet: {sheet}")
    return DemoResult(run_dir, sheet, rows)


def _epoch_row(checkpoint: Checkpoint, frame: Frame) -> dict[str, float]:
    row = {"epoch": checkpoint.epoch, **checkpoint.scalars}
    row["latency_s"] = frame.timings.get("total", float("nan"))
    for key in ("trustworthiness", "ppr", "knn_preservation"):
        if key in frame.metrics:
            row[key] = float(frame.metrics[key])
    return row


def _format_row(row: dict[str, float]) -> str:
    text = (
        f"epoch {row['epoch']:3d}  train {row['train_loss']:.3f}  val {row['val_loss']:.3f} "
        f"(acc {row['val_accuracy']:.3f})  frame {row['latency_s']:.2f} s"
    )
    names = {"trustworthiness": "T", "ppr": "PPR", "knn_preservation": "kNN"}
    for key, short in names.items():
        if key in row:
            text += f"  {short} {row[key]:.3f}"
    return text


def _generated_classification(
    n_samples: int, n_features: int, n_classes: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=min(n_features, 24),
        n_redundant=min(max(n_features - 24, 0), 16),
        n_classes=n_classes,
        n_clusters_per_class=2,
        class_sep=1.5,
        random_state=seed,
    )
    x = (x - x.mean(0)) / x.std(0)
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
