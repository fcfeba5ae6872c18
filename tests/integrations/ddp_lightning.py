"""Lightning ``strategy="ddp"``, ``devices=2`` on CPU with SentryCamCallback (default run_dir).

Run as ``python ddp_lightning.py OUT`` from OUT: Lightning starts the second process itself.
Each rank writes ``OUT/rank<r>.json`` with what its callback saw.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
from integration_models import lightning_module, loaders, probe

from sentrycam_widget import demo
from sentrycam_widget.integrations.lightning import SentryCamCallback


def main() -> None:
    out = Path(sys.argv[1])
    data = demo.digits_data()
    callback = SentryCamCallback(probe(data), methods=())
    train, val = loaders(data)  # 512 digits: 4 batches of 64 per rank and epoch
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=2,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=1,
    )
    trainer.fit(lightning_module(), train, val)
    result = {
        "rank": trainer.global_rank,
        "run_dir": callback.run_dir,
        "has_monitor": callback.monitor is not None,
        "global_step": trainer.global_step,
        "val_loss": float(trainer.callback_metrics["val_loss"]),
    }
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
