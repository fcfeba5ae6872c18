"""A torchrun-style FSDP2 (``fully_shard``) training loop on CPU (gloo), sharded monitor.

Run as ``python -m torch.distributed.run --nproc_per_node=2 fsdp_loop.py OUT``. Every Linear
layer and the model are ``fully_shard``-ed, so each rank holds half of every parameter and a
forward is collective. ``DistributedMonitor(sharded=True)`` forwards each rank's slice of the
probe and rank 0 gathers them. Afterwards rank 0 loads the full weights into an unsharded copy
and writes that copy's capture to ``OUT/reference.npz``; each rank writes ``OUT/rank<r>.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from integration_models import probe
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

from sentrycam_widget import demo
from sentrycam_widget.capture import Recorder
from sentrycam_widget.integrations.distributed import DistributedMonitor


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def main() -> None:
    out = Path(sys.argv[1])
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = mlp()
    mesh = init_device_mesh("cpu", (world,))
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mesh=mesh)  # the head is its own unit: resharded after its forward
    fully_shard(model, mesh=mesh)
    data = demo.digits_data()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    mon = DistributedMonitor(model, probe(data), methods=(), run_dir=out / "run", sharded=True)
    x, y = data.x_train[rank::world][:256], data.y_train[rank::world][:256]
    indices = []
    for epoch in range(2):
        for start in range(0, len(y), 64):
            optimizer.zero_grad()
            F.cross_entropy(model(x[start : start + 64]), y[start : start + 64]).backward()
            optimizer.step()
        indices.append(mon.checkpoint(epoch, step=4 * (epoch + 1)))
    mon.close()
    full = {name: value.full_tensor() for name, value in model.state_dict().items()}  # collective
    sharded = all(type(p).__name__ == "DTensor" for p in model.parameters())
    if rank == 0:
        plain = mlp()
        plain.load_state_dict(full)
        ref = Recorder(plain, probe(data)).capture(index=0, epoch=0)
        np.savez(
            out / "reference.npz",
            features=ref.features,
            logits=ref.logits,
            weight=ref.head.weight,
            bias=ref.head.bias,
        )
    result = {"rank": rank, "indices": indices, "sharded": sharded, "run_dir": mon.run_dir}
    (out / f"rank{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
