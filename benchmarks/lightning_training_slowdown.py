"""Training slowdown with SentryCamCallback on versus off, in a Lightning Trainer (digits CNN).

Rounds alternate an "off" fit (``--epochs`` epochs, no callback) and an "on" fit (the same
number of epochs with a fresh ``SentryCamCallback``: a checkpoint after every validation, the
sentrycam projection running on rank 0's worker meanwhile), continuing one LightningModule.
The timed part is each epoch from ``on_train_epoch_start`` to ``on_train_epoch_end``: training,
validation and the callback's capture, not the drain at the end of a fit. One untimed "on" fit
first warms the worker up (the first frame compiles). The slowdown is the median over rounds of
on/off - 1, as in ``benchmarks/widget_training_slowdown.py`` for the plain monitor.

With ``--continued`` every "on" fit reuses the warm-up fit's callback, so each continues that
run (``resume``) with a warm projector, as the plain monitor's benchmark keeps one monitor
whose first frame falls in its warm-up; without it each "on" fit is a new run whose worker
spends the fit on that run's cold first frame.

    python benchmarks/lightning_training_slowdown.py --rounds 5 --epochs 10 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from sentrycam_widget import demo
from sentrycam_widget.integrations.lightning import SentryCamCallback


class Digits(pl.LightningModule):
    """The demo's digits CNN with Adam and a logged ``val_loss``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = demo.make_model(0, demo.DigitsCNN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: list[torch.Tensor], _index: int) -> torch.Tensor:
        return F.cross_entropy(self(batch[0]), batch[1])

    def validation_step(self, batch: list[torch.Tensor], _index: int) -> None:
        self.log("val_loss", F.cross_entropy(self(batch[0]), batch[1]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class EpochTimer(pl.Callback):
    """Wall time of each training epoch (its validation and every callback included)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def _fit(module: Digits, loaders: tuple, epochs: int, callback: SentryCamCallback | None) -> float:
    timer = EpochTimer()
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        callbacks=[timer] if callback is None else [timer, callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, *loaders)
    return sum(timer.seconds)


def measure(rounds: int, epochs: int, root: Path, continued: bool) -> dict:
    data = demo.digits_data()
    train = torch.utils.data.TensorDataset(data.x_train, data.y_train)
    val = torch.utils.data.TensorDataset(data.x_val, data.y_val)
    loaders = (
        torch.utils.data.DataLoader(train, batch_size=64, shuffle=True),
        torch.utils.data.DataLoader(val, batch_size=256),
    )
    module = Digits()
    probe = (data.x_probe, data.y_probe)

    def callback(name: str) -> SentryCamCallback:
        return SentryCamCallback(probe, run_dir=root / name, images=data.thumbnails)

    warm = callback("warm-up")
    _fit(module, loaders, 2, warm)
    off, on = [], []
    for i in range(rounds):
        off.append(_fit(module, loaders, epochs, None))
        on.append(_fit(module, loaders, epochs, warm if continued else callback(f"round-{i}")))
        print(f"round {i}: off {off[-1]:.2f} s, on {on[-1]:.2f} s", file=sys.stderr, flush=True)
    ratios = [b / a - 1.0 for a, b in zip(off, on, strict=True)]
    return {
        "rounds": rounds,
        "epochs_per_block": epochs,
        "continued_run": continued,
        "probe_points": len(data.y_probe),
        "training_threads": torch.get_num_threads(),
        "train_s_off": off,
        "train_s_on": on,
        "slowdown_per_round": ratios,
        "slowdown_median": statistics.median(ratios),
        "load_average": os.getloadavg(),
        "lightning": pl.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10, help="epochs per fit")
    parser.add_argument(
        "--continued",
        action="store_true",
        help="one callback for every 'on' fit: each continues the warm-up fit's run (steady "
        "state, as the plain monitor's benchmark) instead of a new run with its first frame",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args.rounds, args.epochs, Path(tmp), args.continued)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
