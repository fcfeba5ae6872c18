"""Training slowdown with the live monitor on versus off (the quickstart's digits CNN).

Rounds alternate an "off" block (``--epochs`` epochs, worker idle) and an "on" block (the same
number of epochs, each followed by ``mon.checkpoint``, projection running on the worker
meanwhile); between rounds the worker drains its backlog (untimed). The slowdown compares
training time (``demo.train_epoch``): ``slowdown_median``; the capture (``mon.checkpoint``) is
reported beside it (``capture_ms_median``) and in ``slowdown_with_capture_median``, the
slowdown of training and capture together. ``frames_in_block`` counts the frames the worker
finished during each "on" block. The worker's warm-up (compilation of the first frame) happens
before the first round. The slowdown is the median over rounds of on/off - 1, so a machine
shared with other jobs shows as spread across rounds rather than as a bias.

    python benchmarks/widget_training_slowdown.py --rounds 7 --epochs 20 --nice 10 --json out.json

``--worker-share`` sets the worker's share of the time while training is busy (``Monitor``'s
``worker_share``; 1 lets it run freely); ``--worker process`` projects in a child process
(``Monitor(worker="process")``) instead of the worker thread, with ``--worker-idle`` under
SCHED_IDLE.

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


def measure(
    rounds: int,
    epochs: int,
    nice: int,
    run_dir: Path,
    worker_share: float | None = None,
    worker: str = "thread",
    worker_idle: bool = False,
) -> dict:
    data = demo.digits_data()
    model = demo.make_model(0, demo.DigitsCNN)
    optimizer = demo.make_optimizer(model)
    options: dict = {"worker": worker}
    if worker_idle:
        options["worker_idle"] = True
    if worker_share is not None:
        options["worker_share"] = worker_share
    probe = (data.x_probe, data.y_probe)
    mon = Monitor(model, probe=probe, run_dir=run_dir, worker_nice=nice, **options)
    mon.checkpoint(-1)
    mon.flush()  # warm-up: the first frame compiles
    off, on, captures, frames = [], [], [], []
    epoch = 0
    for _ in range(rounds):
        t_off, _ = _train_block(model, optimizer, data, range(epoch, epoch + epochs), None)
        epoch += epochs
        before = len(mon.store.frame_indices("sentrycam"))
        t_on, capture = _train_block(model, optimizer, data, range(epoch, epoch + epochs), mon)
        frames.append(len(mon.store.frame_indices("sentrycam")) - before)
        epoch += epochs
        off.append(t_off)
        on.append(t_on)
        captures.append(capture)
        mon.flush()
    mon.close()
    ratios = [b / a - 1.0 for a, b in zip(off, on, strict=True)]
    totals = [(b + sum(c)) / a - 1.0 for a, b, c in zip(off, on, captures, strict=True)]
    return {
        "rounds": rounds,
        "epochs_per_block": epochs,
        "worker_nice": nice,
        "worker_share": worker_share,
        "worker": worker,
        "worker_idle": worker_idle,
        "training_threads": torch.get_num_threads(),
        "train_s_off": off,
        "train_s_on": on,
        "capture_s_on": [sum(c) for c in captures],
        "slowdown_per_round": ratios,
        "slowdown_median": statistics.median(ratios),
        "capture_ms_median": 1000 * statistics.median(c for block in captures for c in block),
        "slowdown_with_capture_per_round": totals,
        "slowdown_with_capture_median": statistics.median(totals),
        "frames_in_block": frames,
        "load_average": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=20, help="epochs per block")
    parser.add_argument("--nice", type=int, default=10, help="worker nice increment")
    parser.add_argument("--worker-share", type=float, default=None, help="Monitor worker_share")
    parser.add_argument("--worker", choices=("thread", "process"), default="thread")
    parser.add_argument(
        "--worker-idle", action="store_true", help="process worker under SCHED_IDLE"
    )
    parser.add_argument(
        "--train-threads", type=int, default=None, help="torch threads of the training loop"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.train_threads is not None:
        torch.set_num_threads(args.train_threads)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        result = measure(
            args.rounds,
            args.epochs,
            args.nice,
            run,
            args.worker_share,
            args.worker,
            args.worker_idle,
        )
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
