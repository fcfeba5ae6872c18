"""Training slowdown with SentryCamCallback on versus off, in a Lightning Trainer (digits CNN).

Rounds alternate an "off" fit (``--epochs`` epochs, no callback) and an "on" fit (the same
number of epochs with a fresh ``SentryCamCallback``: a checkpoint after every validation, the
sentrycam projection running on rank 0's worker meanwhile), continuing one LightningModule.
The timed part is each epoch from ``on_train_epoch_start`` to ``on_train_epoch_end``: training,
validation and the callback's capture, not the drain at the end of a fit. As in
``benchmarks/widget_training_slowdown.py`` for the plain monitor, the slowdown is the median
over rounds of on/off - 1 of the training time, i.e. the epochs less the callback's capture
(``slowdown_median``), and the capture is reported beside it (``capture_ms_median``) together
with the slowdown of the whole epochs, capture included (``slowdown_with_capture_median``).
One untimed "on" fit first warms the worker up (the first frame compiles). ``frames_in_fit``
counts the frames the worker finished before each "on" fit's last epoch ended; the rest are
projected when the fit ends (``drain_s``, untimed).

With ``--continued`` every "on" fit reuses the warm-up fit's callback, so each continues that
run (``resume``) with a warm projector, as the plain monitor's benchmark keeps one monitor
whose first frame falls in its warm-up; without it each "on" fit is a new run whose worker
spends the fit on that run's cold first frame.

    python benchmarks/lightning_training_slowdown.py --rounds 7 --epochs 10 --continued

``--record-only`` measures ``methods=()`` (capture and storage, no projection),
``--worker-share`` the worker's share of the time while training is busy (``Monitor``'s
``worker_share``; 1 lets it run freely), ``--worker-nice`` its nice value,
``--worker process`` the process worker (with ``--worker-idle``: its child under SCHED_IDLE)
(``Monitor(worker="process")``: a child process projects; each "on" fit starts its own child,
whose start — imports and numba kernels from the cache — falls inside that fit).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
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


class TimedCallback(SentryCamCallback):
    """``SentryCamCallback`` that adds up the seconds its checkpoints take on the training thread."""

    capture_s: list[float]

    def _record(self, trainer: pl.Trainer) -> None:
        start = time.perf_counter()
        super()._record(trainer)
        self.capture_s.append(time.perf_counter() - start)


class EpochTimer(pl.Callback):
    """Wall time of each training epoch (its validation and every callback included), and the
    callback's frames when the last epoch ended."""

    def __init__(self, callback: TimedCallback | None) -> None:
        self.seconds: list[float] = []
        self.frames = 0
        self.last_end = 0.0
        self._start = 0.0
        self._callback = callback

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.last_end = time.perf_counter()
        self.seconds.append(self.last_end - self._start)
        monitor = None if self._callback is None else self._callback.monitor
        if monitor is not None:
            self.frames = len(monitor.store.frame_indices("sentrycam"))


@dataclass
class Fit:
    """One fit's timed epochs, its callback's capture, frames by its last epoch and its drain."""

    epochs_s: float
    capture_s: float = 0.0
    frames_in_fit: int = 0
    drain_s: float = 0.0


def _fit(module: Digits, loaders: tuple, epochs: int, callback: TimedCallback | None) -> Fit:
    timer = EpochTimer(callback)
    if callback is not None:
        callback.capture_s = []
        before = callback.monitor
        frames_before = 0 if before is None else len(before.store.frame_indices("sentrycam"))
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
    ended = time.perf_counter()  # the fit's drain ends it: on_fit_end closes the monitor
    if callback is None:
        return Fit(sum(timer.seconds))
    return Fit(
        sum(timer.seconds),
        sum(callback.capture_s),
        timer.frames - frames_before,
        ended - timer.last_end,
    )


def measure(
    rounds: int,
    epochs: int,
    root: Path,
    continued: bool,
    record_only: bool = False,
    worker_share: float | None = None,
    worker: str = "thread",
    worker_nice: int | None = None,
    worker_idle: bool = False,
    feed_interval: float | None = None,
) -> dict:
    data = demo.digits_data()
    train = torch.utils.data.TensorDataset(data.x_train, data.y_train)
    val = torch.utils.data.TensorDataset(data.x_val, data.y_val)
    loaders = (
        torch.utils.data.DataLoader(train, batch_size=64, shuffle=True),
        torch.utils.data.DataLoader(val, batch_size=256),
    )
    module = Digits()
    probe = (data.x_probe, data.y_probe)

    options: dict = {"methods": ()} if record_only else {"images": data.thumbnails}
    if worker_share is not None:
        options["worker_share"] = worker_share
    options["worker"] = worker
    if worker_nice is not None:
        options["worker_nice"] = worker_nice
    if worker_idle:
        options["worker_idle"] = True
    if feed_interval is not None:
        options["interval"] = feed_interval

    def callback(name: str) -> TimedCallback:
        return TimedCallback(probe, run_dir=root / name, **options)

    warm = callback("warm-up")
    _fit(module, loaders, 2, warm)
    off, on = [], []
    for i in range(rounds):
        off.append(_fit(module, loaders, epochs, None).epochs_s)
        on.append(_fit(module, loaders, epochs, warm if continued else callback(f"round-{i}")))
        print(
            f"round {i}: off {off[-1]:.2f} s, on {on[-1].epochs_s:.2f} s "
            f"(capture {on[-1].capture_s:.2f} s, {on[-1].frames_in_fit} frames in the fit)",
            file=sys.stderr,
            flush=True,
        )
    train_on = [fit.epochs_s - fit.capture_s for fit in on]
    ratios = [b / a - 1.0 for a, b in zip(off, train_on, strict=True)]
    totals = [fit.epochs_s / a - 1.0 for a, fit in zip(off, on, strict=True)]
    return {
        "rounds": rounds,
        "epochs_per_block": epochs,
        "continued_run": continued,
        "record_only": record_only,
        "worker_share": worker_share,
        "worker": worker,
        "worker_nice": worker_nice,
        "worker_idle": worker_idle,
        "feed_interval": feed_interval,
        "probe_points": len(data.y_probe),
        "training_threads": torch.get_num_threads(),
        "train_s_off": off,
        "train_s_on": train_on,
        "capture_s_on": [fit.capture_s for fit in on],
        "slowdown_per_round": ratios,
        "slowdown_median": statistics.median(ratios),
        "capture_ms_median": 1000 * statistics.median(fit.capture_s / epochs for fit in on),
        "slowdown_with_capture_per_round": totals,
        "slowdown_with_capture_median": statistics.median(totals),
        "frames_in_fit": [fit.frames_in_fit for fit in on],
        "drain_s": [fit.drain_s for fit in on],
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
    parser.add_argument("--record-only", action="store_true", help="methods=(): no projection")
    parser.add_argument("--worker-share", type=float, default=None, help="Monitor worker_share")
    parser.add_argument("--worker", choices=("thread", "process"), default="thread")
    parser.add_argument("--worker-nice", type=int, default=None, help="Monitor worker_nice")
    parser.add_argument(
        "--worker-idle", action="store_true", help="process worker under SCHED_IDLE"
    )
    parser.add_argument(
        "--feed-interval", type=float, default=None, help="process worker: seconds between looks"
    )
    parser.add_argument(
        "--train-threads", type=int, default=None, help="torch threads of the training loop"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.train_threads is not None:
        torch.set_num_threads(args.train_threads)
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(
            args.rounds,
            args.epochs,
            Path(tmp),
            args.continued,
            args.record_only,
            args.worker_share,
            args.worker,
            args.worker_nice,
            args.worker_idle,
            args.feed_interval,
        )
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
