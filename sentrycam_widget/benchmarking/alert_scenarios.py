"""The early-alert scenario suite (issue 15): real torch runs that fail gradually, and healthy twins.

Every run trains on scikit-learn's bundled digits for ``epochs`` epochs (Adam, LR 1e-3) and
changes from epoch ``change_epoch`` on, as its scenario says:

- ``ramp_x{r}``: the learning rate is multiplied by r every epoch (r = 1.2, 1.5, 2);
- ``label_noise``: a growing share of the training labels (10 % more every epoch, up to 80 %)
  is flipped to the next digit;
- ``input_shift``: training images drift towards their negative (10 % more every epoch), the
  validation images stay clean;
- ``class_incremental``: classes 0–4 before, 5–9 after (the validation loss is the current
  task's, as a user training task 2 would watch);
- ``collapse`` (label-free): an autoencoder whose code penalty doubles every epoch, so the code
  collapses to a few directions; its validation loss is the reconstruction error;
- ``healthy``: nothing changes (classifiers and autoencoders).

Architectures: ``cnn`` (the demo's digits CNN), ``mlp`` (two hidden ReLU layers on the flat
image), ``ae_mlp`` and ``ae_cnn`` (autoencoders with a 16-d code; the captured layer is the
code). The probe set is all 1,797 images. Every ``every`` optimiser steps the probe's features
(and logits) are captured and fed to :class:`sentrycam_widget.alerts.EarlyWatch`; after every
epoch a full checkpoint goes to :class:`~sentrycam_widget.alerts.AlertEngine` with its
SentryCam frame (classifiers, when ``project``), so the paper's 2-D rule and the
validation-loss rule run beside the early signals. :func:`run_scenario` returns the run's trace.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

CLASSIFIERS = ("cnn", "mlp")
AUTOENCODERS = ("ae_mlp", "ae_cnn")
GRADUAL = ("ramp_x1.2", "ramp_x1.5", "ramp_x2", "label_noise", "input_shift", "collapse")
SCENARIOS = (*GRADUAL, "class_incremental", "healthy")


@dataclass(frozen=True)
class RunSpec:
    """One run of the suite: scenario, architecture, seed and schedule."""

    scenario: str
    arch: str
    seed: int
    epochs: int = 30
    change_epoch: int = 11
    every: int = 5
    project: bool = True

    @property
    def name(self) -> str:
        return f"{self.scenario}-{self.arch}-s{self.seed}"

    @property
    def label_free(self) -> bool:
        return self.arch in AUTOENCODERS


class MLP(nn.Module):
    """Flatten→Linear(64→128)→ReLU→Linear(128→64)→ReLU, then the head Linear(64→10)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU()
        )
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class AutoEncoder(nn.Module):
    """Encoder (MLP or small CNN) to a 16-d code (``features``), MLP decoder back to 8×8."""

    def __init__(self, conv: bool) -> None:
        super().__init__()
        if conv:
            trunk: list[nn.Module] = [nn.Conv2d(1, 16, 3), nn.ReLU(), nn.Flatten()]
            width = 16 * 6 * 6
        else:
            trunk, width = [nn.Flatten(), nn.Linear(64, 128), nn.ReLU()], 128
        self.features = nn.Sequential(*trunk, nn.Linear(width, 16))
        self.decoder = nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Linear(128, 64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.features(x)).view(-1, 1, 8, 8)


def make_model(arch: str, seed: int) -> nn.Module:
    """A seeded model of ``arch`` (see :data:`CLASSIFIERS` and :data:`AUTOENCODERS`)."""
    from sentrycam_widget import demo

    factories = {
        "cnn": demo.DigitsCNN,
        "mlp": MLP,
        "ae_mlp": lambda: AutoEncoder(conv=False),
        "ae_cnn": lambda: AutoEncoder(conv=True),
    }
    if arch not in factories:
        raise ValueError(f"unknown architecture {arch!r}; one of {sorted(factories)}")
    return demo.make_model(seed, factories[arch])


def _schedule(spec: RunSpec, epoch: int) -> dict[str, Any]:
    """This epoch's learning rate, label-flip share, shift, classes and code penalty."""
    k = epoch - spec.change_epoch + 1  # 1 in the first changed epoch, <= 0 before
    out = {"lr": 1e-3, "flip": 0.0, "shift": 0.0, "classes": tuple(range(10)), "penalty": 0.0}
    if k <= 0:
        if spec.scenario == "class_incremental":
            out["classes"] = (0, 1, 2, 3, 4)
        return out
    if spec.scenario.startswith("ramp_x"):
        out["lr"] = 1e-3 * float(spec.scenario.removeprefix("ramp_x")) ** k
    elif spec.scenario == "label_noise":
        out["flip"] = min(0.8, 0.1 * k)
    elif spec.scenario == "input_shift":
        out["shift"] = min(1.0, 0.1 * k)
    elif spec.scenario == "class_incremental":
        out["classes"] = (5, 6, 7, 8, 9)
    elif spec.scenario == "collapse":
        out["penalty"] = 1e-3 * 2.0**k
    return out


def run_scenario(spec: RunSpec) -> dict[str, Any]:
    """Train ``spec``'s run, watching it at both cadences; return its trace (JSON-ready).

    The trace holds per-epoch scalars, the epoch-cadence alerts (:class:`AlertEngine`: the
    validation-loss rule, the paper's 2-D rule when projected, the feature signals) and the
    step-cadence alerts of :class:`EarlyWatch`, each alert with its optimiser step.
    """
    from sentrycam_widget import demo
    from sentrycam_widget.alerts import AlertEngine, EarlyWatch
    from sentrycam_widget.capture import checkpoint_from_arrays

    if spec.scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {spec.scenario!r}; one of {SCENARIOS}")
    torch.set_num_threads(1)
    data = demo.digits_data(spec.seed)
    model = make_model(spec.arch, spec.seed)
    optimizer = demo.make_optimizer(model)
    projector = None
    if spec.project and not spec.label_free:
        from sentrycam_widget.projection import make_projector

        projector = make_projector("sentrycam", seed=spec.seed)
    engine, watch = AlertEngine(), EarlyWatch()
    probe_x, probe_y = data.x_probe, data.y_probe.numpy()
    flip_order = torch.randperm(
        len(data.y_train), generator=torch.Generator().manual_seed(spec.seed)
    )
    step, scalars_per_epoch, epoch_steps = 0, [], []
    early: list[dict[str, Any]] = []

    def look(epoch: int) -> tuple[np.ndarray, np.ndarray | None]:
        model.eval()
        with torch.no_grad():
            features = model.features(probe_x)
            logits = None if spec.label_free else model.head(features).numpy()
        model.train()
        return features.numpy(), logits

    for epoch in range(1, spec.epochs + 1):
        plan = _schedule(spec, epoch)
        for group in optimizer.param_groups:
            group["lr"] = plan["lr"]
        keep = torch.isin(data.y_train, torch.as_tensor(plan["classes"]))
        x_train, y_train = data.x_train.clone(), data.y_train.clone()
        n_flip = round(plan["flip"] * len(y_train))
        y_train[flip_order[:n_flip]] = (y_train[flip_order[:n_flip]] + 1) % 10
        x_train = (1 - plan["shift"]) * x_train + plan["shift"] * (1 - x_train)
        x_train, y_train = x_train[keep], y_train[keep]
        order = torch.randperm(
            len(y_train), generator=torch.Generator().manual_seed(spec.seed * 1000 + epoch)
        )
        model.train()
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            out = model(x_train[batch])
            if spec.label_free:
                code = model.features(x_train[batch])
                loss = nn.functional.mse_loss(out, x_train[batch])
                loss = loss + plan["penalty"] * code.pow(2).mean()
            else:
                loss = nn.functional.cross_entropy(out, y_train[batch])
            loss.backward()
            optimizer.step()
            step += 1
            if step % spec.every == 0:
                features, logits = look(epoch)
                if not np.isfinite(features).all():
                    break
                labels = None if spec.label_free else probe_y
                for alert in watch.update(
                    features, step=step, epoch=epoch, labels=labels, logits=logits
                ):
                    early.append(alert.to_dict())
        val_keep = torch.isin(data.y_val, torch.as_tensor(plan["classes"]))
        x_val, y_val = data.x_val[val_keep], data.y_val[val_keep]
        model.eval()
        with torch.no_grad():
            if spec.label_free:
                val_loss = float(nn.functional.mse_loss(model(data.x_val), data.x_val))
                val_accuracy = float("nan")
            else:
                val_loss, val_accuracy = demo.evaluate(model, x_val, y_val)
        features, logits = look(epoch)
        if not (np.isfinite(val_loss) and np.isfinite(features).all()):
            break
        scalars = {
            "lr": plan["lr"],
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "step": step,
        }
        if not spec.label_free:
            scalars["probe_accuracy"] = float(np.mean(logits.argmax(1) == probe_y))
        scalars_per_epoch.append(scalars)
        epoch_steps.append(step)
        checkpoint = checkpoint_from_arrays(
            epoch - 1,
            epoch,
            features,
            probe_y,
            logits=logits,
            scalars={"val_loss": val_loss},
        )
        frame = None
        if projector is not None:
            frame = projector.update(checkpoint)
        engine.update(checkpoint, frame)
    return {
        "spec": asdict(spec),
        "name": spec.name,
        "scalars": scalars_per_epoch,
        "epoch_steps": epoch_steps,
        "epoch_alerts": [{**a.to_dict(), "step": epoch_steps[a.checkpoint]} for a in engine.alerts],
        "early_alerts": early,
        "early_records": watch.records,
    }
