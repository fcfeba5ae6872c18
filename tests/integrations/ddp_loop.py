"""A torchrun-style DDP training loop on CPU (gloo) with a DistributedMonitor.

Run as ``python -m torch.distributed.run --nproc_per_node=2 ddp_loop.py OUT MODE``; each rank
writes ``OUT/rank<r>.json``. MODE ``record``: rank 0 records (through the unwrapped module:
the model has BatchNorm buffers, so a DDP forward on rank 0 alone would wait forever for the
buffer broadcast) and a sharded monitor gathers every rank's probe slice. MODE ``stop``: the
validation loss rises after epoch 5 and ``stop_on_alert`` stops both ranks together; rank 0
flushes its worker each epoch so that the stop comes at the alert's own epoch (a training loop
would not wait: it stops at the first ``should_stop`` after the alert arrives).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from integration_models import FAST, probe
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sentrycam_widget import demo
from sentrycam_widget.integrations.distributed import DistributedMonitor


def bn_mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)
    )


def train_step(ddp: nn.Module, optimizer, x, y) -> None:
    ddp.train()
    optimizer.zero_grad()
    F.cross_entropy(ddp(x), y).backward()
    optimizer.step()


def record(out: Path, ddp: nn.Module, data: demo.DigitsData, rank: int, world: int) -> dict:
    optimizer = demo.make_optimizer(ddp)
    mon = DistributedMonitor(ddp, probe(data), methods=(), run_dir=out / "run")
    sharded = DistributedMonitor(
        ddp, probe(data), methods=(), run_dir=out / "sharded", sharded=True
    )
    x, y = data.x_train[rank::world][:256], data.y_train[rank::world][:256]
    step, indices = 0, []
    for epoch in range(3):
        for start in range(0, len(y), 64):
            train_step(ddp, optimizer, x[start : start + 64], y[start : start + 64])
            step += 1
        indices.append([mon.checkpoint(epoch, step=step), sharded.checkpoint(epoch, step=step)])
    mon.close()
    sharded.close()
    return {"indices": indices, "run_dir": mon.run_dir, "is_recorder": mon.is_recorder}


def stop(out: Path, ddp: nn.Module, data: demo.DigitsData, rank: int, world: int) -> dict:
    optimizer = demo.make_optimizer(ddp)
    mon = DistributedMonitor(
        ddp, probe(data, every=12), run_dir=out / "run", stop_on_alert=True, method_options=FAST
    )
    x, y = data.x_train[rank::world][:64], data.y_train[rank::world][:64]
    stopped_at = None
    for epoch in range(30):
        train_step(ddp, optimizer, x, y)
        # a validation loss that falls for six epochs, then keeps rising
        val_loss = 2.0 - 0.1 * epoch if epoch < 6 else 1.5 + 0.2 * (epoch - 5)
        mon.checkpoint(epoch, step=epoch + 1, val_loss=val_loss)
        mon.flush()  # rank 0 only (module doc); rank 1 meanwhile waits in should_stop
        if mon.should_stop():
            stopped_at = epoch
            break
    mon.close()
    alerts = [] if mon.monitor is None else mon.monitor.alerts
    return {
        "stopped_at": stopped_at,
        "alert_epochs": sorted({a.epoch for a in alerts}),
        "alert_signals": sorted({a.signal for a in alerts}),
    }


def main() -> None:
    out, mode = Path(sys.argv[1]), sys.argv[2]
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    ddp = DistributedDataParallel(bn_mlp())
    data = demo.digits_data()
    result = (record if mode == "record" else stop)(out, ddp, data, rank, world)
    (out / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "world": world, **result}))
    # both ranks tear gloo down together: a rank that destroyed its group while the other was
    # still closing its monitor aborted at exit now and then ("terminate called without an
    # active exception", SIGABRT), after its result was written
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
