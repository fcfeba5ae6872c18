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
import json
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentrycam_widget.alerts import REFERENCE_SIGNALS, fisher_ratio

RESULTS = Path(__file__).resolve().parent / "results"
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

    from sentrycam_widget import demo
    from sentrycam_widget.audit import audit_run
    from sentrycam_widget.pipeline import project_checkpoint
    from sentrycam_widget.projection import make_projector

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
    from sentrycam_widget.audit import load_audit
    from sentrycam_widget.store import RunStore

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
            "met_on": [row["run"] for row in failing if _lead(row, "combined") >= 3],
            "reference_rule_met_on": [
                row["run"] for row in failing if _lead(row, "reference") >= 3
            ],
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
    from sentrycam_widget.store import RunStore

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
}


# ---------------------------------------------------------------------------------------------
# Table helpers
# ---------------------------------------------------------------------------------------------


def _instability_row(trace: dict[str, Any], change: int) -> dict[str, Any]:
    """First firings over the whole run (``first_*``) and from the LR change on (``after_*``);
    leads are measured on the latter, so an alarm before the change is not counted as a lead."""
    from sentrycam_widget.alerts import first_firing

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


def _lead(row: dict[str, Any], signal: str) -> float:
    """Checkpoints by which ``signal`` fired before the val-loss rule, both counted from the LR
    change on (inf if only ``signal`` fired, -inf if it did not fire)."""
    ours, baseline = row[f"after_{signal}"], row["after_val_loss"]
    if ours is None:
        return -float("inf")
    return float("inf") if baseline is None else float(baseline - ours)


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
    from sentrycam_widget.metrics import eval_indices

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
# Output
# ---------------------------------------------------------------------------------------------


def write_results(results: dict[str, dict[str, Any]], out: Path = RESULTS) -> tuple[Path, Path]:
    """Merge ``results`` into ``case_studies.json`` (tables, no traces) and rewrite the .md."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "case_studies.json", out / "case_studies.md"
    merged = json.loads(json_path.read_text()) if json_path.exists() else {}
    merged["environment"] = _environment()
    for name, result in results.items():
        merged[name] = {key: value for key, value in result.items() if key != "traces"}
    json_path.write_text(json.dumps(merged, indent=2, default=_jsonable) + "\n")
    md_path.write_text(markdown(merged))
    return json_path, md_path


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """The Markdown tables of whichever studies ``results`` holds."""
    parts = ["# Audit case studies (`python benchmarks/case_studies.py all`)\n"]
    if "environment" in results:
        env = results["environment"]
        parts.append(
            "Measured with " + ", ".join(f"{k} {v}" for k, v in env.items()) + ". The alert "
            "rules are the `sentrycam_widget.alerts` defaults, not tuned on these runs (the "
            "study settings were explored on seeds 10-12).\n"
        )
    if "instability" in results:
        result = results["instability"]
        parts.append(_instability_md(result, f"seed {result['settings']['seed']}"))
    if "instability_seeds" in results:
        result = results["instability_seeds"]
        seeds = ", ".join(map(str, result["settings"]["seeds"]))
        parts.append(_instability_md(result, f"the same on seeds {seeds}", "(a')"))
    if "healthy" in results:
        parts.append(_healthy_md(results["healthy"]))
    if "continual" in results:
        parts.append(_continual_md(results["continual"]))
    return "\n".join(parts)


_SHORT = {
    "combined": "combined",
    "reference": "ref V/D",
    "val_loss": "val-loss rule",
    "intra_class_variance_2d": "V 2-D",
    "inter_class_distance_2d": "D 2-D",
    "between_within_2d": "B/W 2-D",
    "fisher_ratio": "Fisher",
    "nc1": "NC1",
    "effective_rank": "eff. rank",
    "cka_prev": "CKA",
    "dead_fraction": "dead units",
}


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _instability_md(result: dict[str, Any], which: str, tag: str = "(a)") -> str:
    s = result["settings"].get("runs", result["settings"])
    header = [
        "run",
        "failed at",
        "final acc",
        *(_SHORT[k] for k in _SHORT),
        "lead (combined)",
        "lead (ref V/D)",
        "alarms before the change",
    ]
    rows = [
        [
            row["run"],
            row["failed_at"],
            row["final_val_accuracy"],
            *(row[f"after_{k}"] for k in _SHORT),
            *(
                _lead_cell(_lead(row, signal)) if not row["run"].endswith("control") else None
                for signal in ("combined", "reference")
            ),
            ", ".join(_SHORT.get(a, a) for a in row["alarms_before_change"]) or None,
        ]
        for row in result["rows"]
    ]
    target = result["target"]
    return (
        f"## {tag} Instability: digits CNN, {which}, {s['epochs']} epochs, LR "
        f"{s['base_lr']:g} raised at epoch {s['change_epoch']} (checkpoint "
        f"{result['change_checkpoint']})\n\n"
        "Cells: the checkpoint index at which each rule first fired at or after the change (– = "
        "never); rules that fired before the change (false alarms: nothing had happened yet) "
        "are listed in the last column. 'failed at' = first checkpoint with validation accuracy "
        "below half its best; lead = the val-loss rule's checkpoint minus that rule's.\n\n"
        + _table(header, rows)
        + f"\nTarget (combined ≥ 3 checkpoints before the val-loss rule on a failing run): met "
        f"on {target['met_on'] or 'none'} of failing runs {target['failing_runs']}; the "
        f"paper's V/D rule meets it on {target['reference_rule_met_on'] or 'none'}.\n"
    )


def _lead_cell(lead: float) -> str | int | None:
    if lead == float("inf"):
        return "val-loss rule silent"
    return None if lead == -float("inf") else int(lead)


def _healthy_md(result: dict[str, Any]) -> str:
    s = result["settings"]
    names = list(_SHORT)
    rows = [
        [row["run"], row["final_val_accuracy"], *(row[k] for k in names)] for row in result["rows"]
    ]
    totals = result["totals"]
    rows.append(["runs with an alarm", None, *(totals[k]["runs_with_alarm"] for k in names)])
    return (
        f"## (b) Healthy runs: {len(s['seeds'])} seeds, {s['epochs']} epochs, LR "
        f"{s['base_lr']:g}\n\nCells: number of checkpoints at which each rule fired (every one "
        "is a false alarm).\n\n" + _table(["run", "final acc", *(_SHORT[k] for k in names)], rows)
    )


def _continual_md(result: dict[str, Any]) -> str:
    s = result["settings"]
    header = ["checkpoint", "task", "task-1 acc", "task-2 acc", "task-1 Fisher (features)"]
    has_2d = "task1_fisher_2d" in result["rows"][0]
    if has_2d:
        header.append("task-1 Fisher (2-D)")
    header.append("alerts")
    rows = []
    for row in result["rows"]:
        cells = [
            row["checkpoint"],
            row["task"],
            row["task1_accuracy"],
            row["task2_accuracy"],
            row["task1_fisher_features"],
        ]
        if has_2d:
            cells.append(row["task1_fisher_2d"])
        cells.append(", ".join(_SHORT.get(a, a) for a in row["alerts"]) or None)
        rows.append(cells)
    summary = result["summary"]
    first = ", ".join(
        f"{_SHORT.get(k, k)} {v}" for k, v in summary["first_firing_after_switch"].items()
    )
    return (
        f"## (c) Continual learning: classes 0–4 for {s['task_epochs']} epochs, then 5–9 "
        f"(switch at checkpoint {result['switch_checkpoint']}), seed {s['seed']}\n\n"
        + _table(header, rows)
        + f"\nFirst firing after the switch: {first or 'none'}. Alerts before the switch: "
        f"{', '.join(summary['alerts_before_switch']) or 'none'}.\n"
    )


def _environment() -> dict[str, str]:
    """Versions, cores and the code's commit (the 2-D signals depend on the projection engine)."""
    import platform
    import subprocess

    import torch

    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return "unknown"
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "sentrycam_widget")
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpus": str(os.cpu_count()),
        "commit": git("rev-parse", "--short", "HEAD")
        + (" with uncommitted changes to sentrycam_widget" if changed else ""),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# ---------------------------------------------------------------------------------------------
# Figures (the notebooks draw these)
# ---------------------------------------------------------------------------------------------

PLOTTED = (
    "val_loss",
    "inter_class_distance_2d",
    "intra_class_variance_2d",
    "between_within_2d",
    "fisher_ratio",
    "effective_rank",
    "cka_prev",
    "dead_fraction",
)


def plot_signals(
    trace: dict[str, Any], signals: Sequence[str] = PLOTTED, marks: dict[str, int] | None = None
) -> Any:
    """One panel per signal over the checkpoints; red ticks where it fired, a black dashed line
    where ``combined`` first fired, grey lines at ``marks`` (e.g. the LR change)."""
    import matplotlib.pyplot as plt

    present = [s for s in signals if any(s in r for r in trace["records"])]
    columns = min(4, len(present))
    rows = -(-len(present) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(2.6 * columns, 2.2 * rows), layout="constrained", squeeze=False
    )
    for ax in axes.flat[len(present) :]:
        ax.set_visible(False)
    combined = trace["first_firing"].get("combined")
    for ax, name in zip(axes.flat, present, strict=False):
        points = [(r["checkpoint"], r[name]) for r in trace["records"] if name in r]
        ax.plot(*zip(*points, strict=True), color="0.3", lw=1)
        fired = {a["checkpoint"] for a in trace["alerts"] if a["signal"] == name}
        values = dict(points)
        ax.scatter(sorted(fired), [values[i] for i in sorted(fired)], color="red", s=14, zorder=3)
        for label, index in (marks or {}).items():
            ax.axvline(index, color="0.6", lw=1, label=label)
        if combined is not None:
            ax.axvline(combined, color="black", ls="--", lw=1, label="combined")
        ax.set_title(_SHORT.get(name, name), fontsize=9)
        ax.set_xlabel("checkpoint", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(trace["name"], fontsize=10)
    return fig


def plot_frames(
    trace: dict[str, Any],
    checkpoints: Sequence[int],
    method: str = "sentrycam",
    classes: Sequence[int] | None = None,
) -> Any:
    """The stored frames at ``checkpoints`` (background, points, misclassified rings).

    With ``classes``, only those classes' probe points are drawn (e.g. task 1 across a switch).
    """
    import dataclasses

    import matplotlib.pyplot as plt

    from sentrycam_widget.render import draw_frame, palette
    from sentrycam_widget.store import RunStore

    store = RunStore.open(trace["run_dir"])
    labels = store.labels
    keep = np.ones(labels.shape, bool) if classes is None else np.isin(labels, classes)
    fig, axes = plt.subplots(
        1, len(checkpoints), figsize=(2.6 * len(checkpoints), 2.8), layout="constrained"
    )
    for ax, index in zip(np.atleast_1d(axes), checkpoints, strict=True):
        frame = store.frame(method, index)
        predictions = store.checkpoint(index).predictions
        shown = dataclasses.replace(frame, embedding=frame.embedding[keep], recon_pred=None)
        draw_frame(
            ax,
            shown,
            labels[keep],
            None if predictions is None else predictions[keep],
            palette(store.n_classes),
        )
        fired = sorted({a["signal"] for a in frame.alerts})
        if fired:
            ax.set_xlabel(", ".join(_SHORT.get(a, a) for a in fired), fontsize=7, color="red")
    fig.suptitle(trace["name"], fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", nargs="+", choices=[*STUDIES, "all"])
    parser.add_argument("--runs-dir", default="runs/case_studies", help="where runs are recorded")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel processes")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
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
