"""Training slowdown with the live monitor on versus off (the quickstart's digits CNN).

Rounds alternate an "off" block (``--epochs`` epochs, worker idle) and an "on" block (the same
number of epochs, each followed by ``mon.checkpoint``, projection running on the worker
meanwhile); between rounds the worker drains its backlog (untimed). Only training time
(``demo.train_epoch``) is compared; the capture time is reported separately. The worker's
warm-up (compilation of the first frame) happens before the first round. The slowdown is the
median over rounds of on/off - 1, so a machine shared with other jobs shows as spread across
rounds rather than as a bias.

    python benchmarks/widget_training_slowdown.py --rounds 7 --epochs 20 --nice 10 --json out.json

A digits epoch takes ~0.04 s, so blocks of 20 epochs keep the worker busy for the whole "on"
block (the worst case: a real model's epochs are longer than a projection) and 7 rounds make
the median steadier than a few short blocks (3 rounds of 5 epochs scattered from −20 % to
+15 % per round on the same build).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from sentrycam_widget import demo
from sentrycam_widget.monitor import Monitor


def _train_block(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data: demo.DigitsData,
    epochs: range,
    monitor: Monitor | None,
) -> tuple[float, list[float]]:
    train, capture = 0.0, []
    for epoch in epochs:
        start = time.perf_counter()
        demo.train_epoch(model, optimizer, data.x_train, data.y_train, seed=epoch)
        train += time.perf_counter() - start
        if monitor is not None:
            start = time.perf_counter()
            monitor.checkpoint(epoch)
            capture.append(time.perf_counter() - start)
    return train, capture


def measure(rounds: int, epochs: int, nice: int, run_dir: Path) -> dict:
    data = demo.digits_data()
    model = demo.make_model(0, demo.DigitsCNN)
    optimizer = demo.make_optimizer(model)
    mon = Monitor(model, probe=(data.x_probe, data.y_probe), run_dir=run_dir, worker_nice=nice)
    mon.checkpoint(-1)
    mon.flush()  # warm-up: the first frame compiles
    off, on, captures = [], [], []
    epoch = 0
    for _ in range(rounds):
        t_off, _ = _train_block(model, optimizer, data, range(epoch, epoch + epochs), None)
        epoch += epochs
        t_on, capture = _train_block(model, optimizer, data, range(epoch, epoch + epochs), mon)
        epoch += epochs
        off.append(t_off)
        on.append(t_on)
        captures.extend(capture)
        mon.flush()
    mon.close()
    ratios = [b / a - 1.0 for a, b in zip(off, on, strict=True)]
    return {
        "rounds": rounds,
        "epochs_per_block": epochs,
        "worker_nice": nice,
        "training_threads": torch.get_num_threads(),
        "train_s_off": off,
        "train_s_on": on,
        "slowdown_per_round": ratios,
        "slowdown_median": statistics.median(ratios),
        "capture_ms_median": 1000 * statistics.median(captures),
        "load_average": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=20, help="epochs per block")
    parser.add_argument("--nice", type=int, default=10, help="worker nice increment")
    parser.add_argument(
        "--train-threads", type=int, default=None, help="torch threads of the training loop"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.train_threads is not None:
        torch.set_num_threads(args.train_threads)
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args.rounds, args.epochs, args.nice, Path(tmp) / "run")
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
