"""SentryCamTrainerCallback in real Hugging Face Trainer runs (CPU, a tiny BERT built from a config)."""

from __future__ import annotations

import pytest

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

import torch  # noqa: E402

from sentrycam_widget.integrations.transformers import SentryCamTrainerCallback  # noqa: E402
from sentrycam_widget.store import RunStore  # noqa: E402

N_CLASSES = 3


class TokenDataset(torch.utils.data.Dataset):
    """Generated 8-token sequences; the label is the first token's group (token % 3)."""

    def __init__(self, n: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.input_ids = torch.randint(4, 32, (n, 8), generator=generator)
        self.labels = self.input_ids[:, 0] % N_CLASSES

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[i], "labels": self.labels[i]}


def tiny_bert() -> torch.nn.Module:
    config = transformers.BertConfig(
        vocab_size=32,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=N_CLASSES,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def _arguments(tmp_path, **options) -> transformers.TrainingArguments:
    defaults = {
        "output_dir": str(tmp_path / "hf"),
        "num_train_epochs": 3,
        "per_device_train_batch_size": 32,
        "per_device_eval_batch_size": 64,
        "learning_rate": 3e-3,
        "save_strategy": "no",
        "logging_strategy": "no",
        "report_to": [],
        "use_cpu": True,
        "disable_tqdm": True,
        "seed": 0,
    }
    return transformers.TrainingArguments(**{**defaults, **options})


def test_checkpoints_after_each_evaluation_with_eval_loss(tmp_path):
    train, val = TokenDataset(256, seed=1), TokenDataset(128, seed=2)  # 8 steps per epoch
    probe = (val.input_ids[:96], val.labels[:96])
    callback = SentryCamTrainerCallback(probe, methods=(), run_dir=tmp_path / "run")
    model = tiny_bert()
    trainer = transformers.Trainer(
        model=model,
        args=_arguments(tmp_path, eval_strategy="epoch"),
        train_dataset=train,
        eval_dataset=val,
        callbacks=[callback],
    )
    trainer.train()
    store = RunStore.open(tmp_path / "run")
    info = store.checkpoint_info()
    assert [(i["epoch"], i["step"]) for i in info] == [(0, 8), (1, 16), (2, 24)]
    assert set(info[-1]["scalars"]) == {"val_loss"}  # eval_loss; the timings are left out
    assert info[-1]["scalars"]["val_loss"] == pytest.approx(trainer.evaluate()["eval_loss"])
    # the recorded layer is the classifier's input (pooled features), the logits the model's
    assert store.layer == "classifier"
    assert store.n_features == 16
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=probe[0]).logits.numpy()
    assert store.checkpoint(2).logits == pytest.approx(logits, abs=1e-4)


def test_without_evaluation_checkpoints_at_epoch_end_and_every_n_steps(tmp_path):
    train = TokenDataset(256, seed=1)
    probe = (train.input_ids[:64], train.labels[:64])
    callback = SentryCamTrainerCallback(
        probe, methods=(), run_dir=tmp_path / "run", every_n_steps=5, every_n_epochs=2
    )
    transformers.Trainer(
        model=tiny_bert(),
        args=_arguments(tmp_path, num_train_epochs=4),
        train_dataset=train,
        callbacks=[callback],
    ).train()
    info = RunStore.open(tmp_path / "run").checkpoint_info()
    # every 5th step, plus the ends of epochs 1 and 3 (steps 16, 32)
    assert [i["step"] for i in info] == [5, 10, 15, 16, 20, 25, 30, 32]
    assert [i["epoch"] for i in info] == [0, 1, 1, 1, 2, 3, 3, 3]


def test_process_worker_projects_every_evaluation(tmp_path):
    """worker="process" through the callback's keywords: a child process projects each
    checkpoint; the fit's end drains it, and the widget in the kernel shows every frame."""
    train, val = TokenDataset(128, seed=1), TokenDataset(96, seed=2)
    callback = SentryCamTrainerCallback(
        (val.input_ids, val.labels),
        run_dir=tmp_path / "run",
        method_options={"sentrycam": {"cold_steps": 60, "warm_steps": 20, "resolution": 40}},
        worker="process",
    )
    transformers.Trainer(
        model=tiny_bert(),
        args=_arguments(tmp_path, eval_strategy="epoch", num_train_epochs=2),
        train_dataset=train,
        eval_dataset=val,
        callbacks=[callback],
    ).train()
    store = RunStore.open(tmp_path / "run")
    assert store.checkpoint_indices() == [0, 1]
    assert store.frame_indices("sentrycam") == [0, 1]
    assert sorted(p.data["index"] for p in callback.monitor.widget.frames) == [0, 1]
    assert callback.monitor.widget.status["closed"]
