"""Case studies of the training audit (issue 5): instability, healthy runs, continual learning.

Run ``python benchmarks/case_studies.py instability|healthy|continual|instability_seeds|all``
(``--help`` for the options). Each study trains the demo's digits CNN (``sentrycam_widget.demo``), records every
epoch into a run directory, projects it with SentryCam and audits it with
:func:`sentrycam_widget.audit.audit_run` — the same path as ``python -m sentrycam_widget audit``
— then writes its table to ``benchmarks/results/case_studies.json`` and ``case_studies.md``
(studies not run keep their previous entry). The notebooks ``notebooks/03_instability.ipynb``,
``04_healthy_runs.ipynb`` and ``05_continual_learning.ipynb`` call the same functions with the
same settings and draw the frames and signals.

- instability: the same seed trained normally, then from epoch ``change_epoch`` with the
  learning rate raised: a jump ×k for each k of ``jumps`` (k = 1 is the control run) and a
  ramp (×``ramp`` every epoch). Table: the checkpoint at which training failed (validation
  accuracy below half its best so far), and at which each signal, the paper's rule (V/D),
  ``combined`` and the validation-loss rule first fired.
- healthy: ``seeds`` runs of normal training; every alert is a false alarm. Table: alarms per
  signal and run.
- instability_seeds: the ×30, ×100 and ramp runs of ``instability`` again on seeds 1–4.
- continual: classes 0–4 for ``task_epochs`` epochs, then 5–9; task-1 accuracy, task-1 class
  separation in features and in the frames, per checkpoint, and the alerts after the switch.

The alert triggers are ``sentrycam_widget.alerts`` defaults, unchanged by these studies; the
studies did not tune them: the instability settings (when and how much the LR is raised) were
chosen by exploring seeds 10–12, and the reported runs use seeds 0–4.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from ..alerts import REFERENCE_SIGNALS, fisher_ratio
from ._environment import RESULTS
from .case_report import lead, markdown, write_results
from .early_alerts import early

TASK_1 = (0, 1, 2, 3, 4)
TASK_2 = (5, 6, 7, 8, 9)


# ---------------------------------------------------------------------------------------------
# Settings (the defaults are what the README table and the notebooks use)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstabilitySettings:
    """Normal training (Adam, ``base_lr``) until ``change_epoch``, then the LR is raised."""

    seed: int = 0
    epochs: int = 30
    change_epoch: int = 13
    base_lr: float = 1e-3
    jumps: tuple[float, ...] = (1.0, 10.0, 30.0, 100.0)
    ramp: float | None = 1.5
    method: str | None = "sentrycam"


@dataclass(frozen=True)
class SeedsSettings:
    """Case study (a) again on more seeds, for the jumps that matter and the ramp."""

    seeds: tuple[int, ...] = (1, 2, 3, 4)
    runs: InstabilitySettings = InstabilitySettings(jumps=(30.0, 100.0))


@dataclass(frozen=True)
class HealthySettings:
    """Normal training, one run per seed."""

    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    epochs: int = 30
    base_lr: float = 1e-3
    method: str | None = "sentrycam"


@dataclass(frozen=True)
class ContinualSettings:
    """Classes 0–4 for ``task_epochs`` epochs, then classes 5–9 for ``task_epochs`` more."""

    seed: int = 0
    task_epochs: int = 15
    base_lr: float = 1e-3
    method: str | None = "sentrycam"


@dataclass(frozen=True)
class RunSpec:
    """One recorded training run: per-epoch learning rate and trained classes."""

    name: str
    seed: int
    lrs: tuple[float, ...]
    classes: tuple[tuple[int, ...], ...]
    method: str | None
    projector_options: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# One run: train, record, project, audit
# ---------------------------------------------------------------------------------------------


def record_and_audit(spec: RunSpec, run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Train the digits CNN as ``spec`` says, record and project each epoch, audit the run.

    Returns the run's trace: per-checkpoint scalars and signal values, the alerts and the first
    firing per signal. One torch thread: these models are tiny, and the studies run several
    processes side by side.
    """
    import torch

    from .. import demo
    from ..audit import audit_run
    from ..pipeline import project_checkpoint
    from ..projection import make_projector

    torch.set_num_threads(1)
    data, model, recorder, store = demo.start_digits_recording(run_dir, spec.seed)
    optimizer = demo.make_optimizer(model, spec.lrs[0])
    projector = None
    if spec.method is not None:
        projector = make_projector(spec.method, seed=spec.seed, **spec.projector_options)
    tasks = {classes: data.restricted_to(classes) for classes in set(spec.classes)}
    task_1, task_2 = data.restricted_to(TASK_1), data.restricted_to(TASK_2)
    for index, (lr, classes) in enumerate(zip(spec.lrs, spec.classes, strict=True)):
        epoch = index + 1
        for group in optimizer.param_groups:
            group["lr"] = lr
        task = tasks[classes]
        train_loss = demo.train_epoch(
            model, optimizer, task.x_train, task.y_train, seed=spec.seed * 1000 + epoch
        )
        val_loss, val_accuracy = demo.evaluate(model, task.x_val, task.y_val)
        if not (np.isfinite(train_loss) and np.isfinite(val_loss)):
            break  # diverged to NaN/inf: nothing more to record (and the table says so)
        scalars = {
            "lr": lr,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "task1_accuracy": demo.evaluate(model, task_1.x_val, task_1.y_val)[1],
            "task2_accuracy": demo.evaluate(model, task_2.x_val, task_2.y_val)[1],
        }
        checkpoint = recorder.capture(index=index, epoch=epoch, scalars=scalars)
        store.append_checkpoint(checkpoint)
        if projector is not None:
            project_checkpoint(projector, checkpoint, store, metrics=False)
    audit_run(store, method=spec.method or "sentrycam")
    return trace_of(spec, store.path)


def run_all(
    specs: Sequence[RunSpec], runs_dir: str | os.PathLike[str], workers: int = 1
) -> list[dict[str, Any]]:
    """:func:`record_and_audit` for each spec (in ``workers`` fresh processes when > 1).

    A run directory that already holds an audited run is read back instead of retrained, so a
    notebook can show the runs that the command line recorded with the same settings.
    """
    root = Path(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    dirs = [root / spec.name for spec in specs]
    traces: dict[int, dict[str, Any]] = {
        i: trace_of(spec, d)
        for i, (spec, d) in enumerate(zip(specs, dirs, strict=True))
        if (d / "alerts.json").exists()
    }
    todo = [i for i in range(len(specs)) if i not in traces]
    partial = [str(dirs[i]) for i in todo if dirs[i].exists()]
    if partial:
        raise FileExistsError(f"unfinished run directories (delete them): {', '.join(partial)}")
    if workers <= 1 or len(todo) <= 1:
        traces.update({i: record_and_audit(specs[i], dirs[i]) for i in todo})
    else:
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=get_context("spawn")) as pool:
            done = pool.map(record_and_audit, [specs[i] for i in todo], [dirs[i] for i in todo])
            traces.update(zip(todo, done, strict=True))
    return [traces[i] for i in range(len(specs))]


def trace_of(spec: RunSpec, run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The trace of an audited run directory (what :func:`record_and_audit` returned)."""
    from ..audit import load_audit
    from ..store import RunStore

    store = RunStore.open(run_dir)
    result = load_audit(store)
    if result is None:
        raise FileNotFoundError(f"{run_dir} has not been audited")
    return {
        "name": spec.name,
        "seed": spec.seed,
        "run_dir": str(store.path),
        "scalars": [row["scalars"] for row in store.checkpoint_info()],
        "records": result["records"],
        "alerts": result["alerts"],
        "first_firing": result["first_firing"],
        "note": result["note"],
    }


# ---------------------------------------------------------------------------------------------
# The three studies
# ---------------------------------------------------------------------------------------------


def instability_specs(settings: InstabilitySettings) -> list[RunSpec]:
    """The control run, one run per LR jump, and the ramp run."""
    s = settings
    before = s.change_epoch - 1
    after = s.epochs - before
    schedules = {
        ("control" if k == 1 else f"jump_x{k:g}"): [s.base_lr] * before + [s.base_lr * k] * after
        for k in s.jumps
    }
    if s.ramp is not None:
        ramp = [s.base_lr * s.ramp ** (i + 1) for i in range(after)]
        schedules[f"ramp_x{s.ramp:g}"] = [s.base_lr] * before + ramp
    all_classes = tuple(range(10))
    return [
        RunSpec(name, s.seed, tuple(lrs), (all_classes,) * s.epochs, s.method)
        for name, lrs in schedules.items()
    ]


def instability(
    settings: InstabilitySettings = InstabilitySettings(),
    runs_dir: str | os.PathLike[str] = "runs/instability",
    workers: int = 1,
) -> dict[str, Any]:
    """Case study (a): when each signal and the val-loss rule fire as the LR is raised."""
    traces = run_all(instability_specs(settings), runs_dir, workers)
    return {"settings": asdict(settings), **_instability_table(traces, settings)}


def instability_seeds(
    settings: SeedsSettings = SeedsSettings(),
    runs_dir: str | os.PathLike[str] = "runs/instability_seeds",
    workers: int = 1,
) -> dict[str, Any]:
    """Case study (a) repeated on other seeds for the runs with a raised LR (not the control)."""
    specs = [
        replace(spec, name=f"seed{seed}_{spec.name}")
        for seed in settings.seeds
        for spec in instability_specs(replace(settings.runs, seed=seed))
    ]
    traces = run_all(specs, runs_dir, workers)
    return {"settings": asdict(settings), **_instability_table(traces, settings.runs)}


def _instability_table(
    traces: list[dict[str, Any]], settings: InstabilitySettings
) -> dict[str, Any]:
    change = settings.change_epoch - 1  # checkpoint index of the first raised-LR epoch
    rows = [_instability_row(trace, change) for trace in traces]
    failing = [row for row in rows if row["failed_at"] is not None]
    return {
        "change_checkpoint": change,
        "rows": rows,
        "target": {
            "rule": "combined fires >= 3 checkpoints before the val-loss rule on a failing run",
            "failing_runs": [row["run"] for row in failing],
            "met_on": [row["run"] for row in failing if lead(row, "combined") >= 3],
            "reference_rule_met_on": [row["run"] for row in failing if lead(row, "reference") >= 3],
        },
        "traces": traces,
    }


def healthy(
    settings: HealthySettings = HealthySettings(),
    runs_dir: str | os.PathLike[str] = "runs/healthy",
    workers: int = 1,
) -> dict[str, Any]:
    """Case study (b): false alarms per signal on normal training runs."""
    specs = [
        RunSpec(
            f"seed_{seed}",
            seed,
            (settings.base_lr,) * settings.epochs,
            (tuple(range(10)),) * settings.epochs,
            settings.method,
        )
        for seed in settings.seeds
    ]
    traces = run_all(specs, runs_dir, workers)
    rows = [_alarm_counts(trace) for trace in traces]
    signals = [name for name in rows[0] if name not in ("run", "final_val_accuracy")]
    totals = {
        name: {
            "alarms": sum(row[name] for row in rows),
            "runs_with_alarm": sum(row[name] > 0 for row in rows),
        }
        for name in signals
    }
    return {"settings": asdict(settings), "rows": rows, "totals": totals, "traces": traces}


def continual(
    settings: ContinualSettings = ContinualSettings(),
    runs_dir: str | os.PathLike[str] = "runs/continual",
    workers: int = 1,
) -> dict[str, Any]:
    """Case study (c): classes 0–4, then 5–9; forgetting of task 1 in frames and signals."""
    from ..store import RunStore

    n = settings.task_epochs
    spec = RunSpec(
        "continual",
        settings.seed,
        (settings.base_lr,) * (2 * n),
        (TASK_1,) * n + (TASK_2,) * n,
        settings.method,
    )
    (trace,) = run_all([spec], runs_dir, workers)
    store = RunStore.open(trace["run_dir"])
    separation = _task_separation(store, settings.method)
    rows = []
    for record, scalars, sep in zip(trace["records"], trace["scalars"], separation, strict=True):
        index = record["checkpoint"]
        rows.append(
            {
                "checkpoint": index,
                "epoch": record["epoch"],
                "task": 1 if index < n else 2,
                "task1_accuracy": scalars["task1_accuracy"],
                "task2_accuracy": scalars["task2_accuracy"],
                **sep,
                "alerts": sorted(
                    {a["signal"] for a in trace["alerts"] if a["checkpoint"] == index}
                ),
            }
        )
    after = [a for a in trace["alerts"] if a["checkpoint"] >= n]
    first_after = {}
    for alert in after:
        first_after.setdefault(alert["signal"], alert["checkpoint"])
    before_switch = rows[n - 1]
    return {
        "settings": asdict(settings),
        "switch_checkpoint": n,
        "rows": rows,
        "summary": {
            "task1_accuracy_before_switch": before_switch["task1_accuracy"],
            "task1_accuracy_final": rows[-1]["task1_accuracy"],
            "task1_fisher_features_before_switch": before_switch["task1_fisher_features"],
            "task1_fisher_features_final": rows[-1]["task1_fisher_features"],
            "task1_fisher_2d_before_switch": before_switch.get("task1_fisher_2d"),
            "task1_fisher_2d_final": rows[-1].get("task1_fisher_2d"),
            "alerts_before_switch": sorted(
                {a["signal"] for a in trace["alerts"] if a["checkpoint"] < n}
            ),
            "first_firing_after_switch": dict(sorted(first_after.items())),
        },
        "traces": [trace],
    }


STUDIES = {
    "instability": instability,
    "healthy": healthy,
    "continual": continual,
    "instability_seeds": instability_seeds,
    "early": early,
}


# ---------------------------------------------------------------------------------------------
# Table helpers
# ---------------------------------------------------------------------------------------------


def _instability_row(trace: dict[str, Any], change: int) -> dict[str, Any]:
    """First firings over the whole run (``first_*``) and from the LR change on (``after_*``);
    leads are measured on the latter, so an alarm before the change is not counted as a lead."""
    from ..alerts import first_firing

    first = trace["first_firing"]
    after = first_firing([a for a in trace["alerts"] if a["checkpoint"] >= change])
    accuracies = [s["val_accuracy"] for s in trace["scalars"]]
    return {
        "run": trace["name"],
        "failed_at": _failure_checkpoint(accuracies),
        "final_val_accuracy": accuracies[-1],
        "checkpoints": len(accuracies),
        "alarms_before_change": sorted(
            {a["signal"] for a in trace["alerts"] if a["checkpoint"] < change}
        ),
        **{f"first_{name}": index for name, index in first.items()},
        **{f"after_{name}": index for name, index in after.items()},
    }


def _failure_checkpoint(accuracies: Sequence[float]) -> int | None:
    """First checkpoint whose validation accuracy is below half the best so far."""
    best = 0.0
    for index, accuracy in enumerate(accuracies):
        if accuracy < 0.5 * best:
            return index
        best = max(best, accuracy)
    return None


def _alarm_counts(trace: dict[str, Any]) -> dict[str, Any]:
    counts = {name: 0 for name in trace["first_firing"]}
    for alert in trace["alerts"]:
        counts[alert["signal"]] += 1
    counts["reference"] = len(
        {a["checkpoint"] for a in trace["alerts"] if a["signal"] in REFERENCE_SIGNALS}
    )
    return {
        "run": trace["name"],
        "final_val_accuracy": trace["scalars"][-1]["val_accuracy"],
        **counts,
    }


def _task_separation(store: Any, method: str | None) -> list[dict[str, float]]:
    """Per checkpoint: Fisher ratio of the task-1 probe points, in features and in the frame."""
    from ..metrics import eval_indices

    labels = store.labels
    task_1 = np.isin(labels, TASK_1)
    frames = {}
    if method is not None:
        frames = {frame.index: frame for frame in store.frames(method)}
    out = []
    for checkpoint in store.checkpoints():
        idx = eval_indices(checkpoint.n_points, 2000, 0)
        mask = task_1[idx]
        row = {
            "task1_fisher_features": fisher_ratio(checkpoint.features[idx][mask], labels[idx][mask])
        }
        frame = frames.get(checkpoint.index)
        if frame is not None:
            row["task1_fisher_2d"] = fisher_ratio(frame.embedding[task_1], labels[task_1])
        out.append(row)
    return out


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, results: Path = RESULTS) -> int:
    """Run the named studies and write their tables under ``--out`` (default ``results``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", nargs="+", choices=[*STUDIES, "all"])
    parser.add_argument("--runs-dir", default="runs/case_studies", help="where runs are recorded")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel processes")
    parser.add_argument("--out", type=Path, default=results, help="results folder")
    args = parser.parse_args(argv)
    names = list(STUDIES) if "all" in args.study else list(dict.fromkeys(args.study))
    results = {}
    for name in names:
        start = time.perf_counter()
        results[name] = STUDIES[name](runs_dir=Path(args.runs_dir) / name, workers=args.workers)
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    json_path, md_path = write_results(results, args.out)
    print(markdown({k: v for k, v in results.items()}))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
