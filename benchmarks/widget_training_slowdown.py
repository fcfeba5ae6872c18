"""Training slowdown with the live monitor on versus off (the quickstart's digits CNN).

Times only the training epochs (``demo.train_epoch``); with the monitor on, each epoch is
followed by ``mon.checkpoint`` whose (capture) time is reported separately, and projection runs
on the monitor's worker meanwhile. The worker's warm-up (numba compilation of the first frame)
is done before timing starts, so the number measures steady-state interference.

    python benchmarks/widget_training_slowdown.py --epochs 10 --nice 10 --json out.json

Training time is measured before, during and after the monitor's run; the slowdown is taken
against the faster of the two baselines, so on a machine shared with other jobs read it next
to the spread of the baselines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from sentrycam_widget import demo
from sentrycam_widget.monitor import Monitor


def _train(epochs: int, monitor: Monitor | None, data: demo.DigitsData) -> dict[str, list[float]]:
    model = demo.make_model(0, demo.DigitsCNN)
    optimizer = demo.make_optimizer(model)
    train, capture = [], []
    for epoch in range(epochs):
        start = time.perf_counter()
        demo.train_epoch(model, optimizer, data.x_train, data.y_train, seed=epoch)
        train.append(time.perf_counter() - start)
        if monitor is not None:
            start = time.perf_counter()
            monitor.checkpoint(epoch)
            capture.append(time.perf_counter() - start)
    return {"train": train, "capture": capture}


def _warm_monitor(data: demo.DigitsData, run_dir: Path, nice: int) -> Monitor:
    """A monitor whose worker already projected one frame (compilation done)."""
    model = demo.make_model(1, demo.DigitsCNN)
    mon = Monitor(model, probe=(data.x_probe, data.y_probe), run_dir=run_dir, worker_nice=nice)
    mon.checkpoint(0)
    mon.flush()
    return mon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--nice", type=int, default=10, help="worker nice increment")
    parser.add_argument(
        "--train-threads", type=int, default=None, help="torch threads of the training loop"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.train_threads is not None:
        torch.set_num_threads(args.train_threads)
    data = demo.digits_data()
    with tempfile.TemporaryDirectory() as tmp:
        off = _train(args.epochs, None, data)
        mon = _warm_monitor(data, Path(tmp) / "run", args.nice)
        on = _train(args.epochs, mon, data)
        start = time.perf_counter()
        mon.close()
        drain = time.perf_counter() - start
        off_again = _train(args.epochs, None, data)
    baseline = min(sum(off["train"]), sum(off_again["train"]))
    result = {
        "epochs": args.epochs,
        "worker_nice": args.nice,
        "training_threads": torch.get_num_threads(),
        "train_s_off": [sum(off["train"]), sum(off_again["train"])],
        "train_s_on": sum(on["train"]),
        "slowdown": sum(on["train"]) / baseline - 1.0,
        "capture_ms_median": 1000 * statistics.median(on["capture"]),
        "drain_after_training_s": drain,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
