"""The case studies' tables: case_studies.json (merged across studies) and the Markdown report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._jsonio import json_default
from ..plots import SIGNAL_LABELS
from ._environment import RESULTS, environment
from ._markdown import table

# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def write_results(results: dict[str, dict[str, Any]], out: Path = RESULTS) -> tuple[Path, Path]:
    """Merge ``results`` into ``case_studies.json`` (tables, no traces) and rewrite the .md."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "case_studies.json", out / "case_studies.md"
    merged = json.loads(json_path.read_text()) if json_path.exists() else {}
    merged["environment"] = environment()
    for name, result in results.items():
        merged[name] = {key: value for key, value in result.items() if key != "traces"}
    json_path.write_text(json.dumps(merged, indent=2, default=json_default) + "\n")
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
    if "early" in results:
        from .early_alerts import early_md

        parts.append(early_md(results["early"]))
    return "\n".join(parts)


def _instability_md(result: dict[str, Any], which: str, tag: str = "(a)") -> str:
    s = result["settings"].get("runs", result["settings"])
    header = [
        "run",
        "failed at",
        "final acc",
        *(SIGNAL_LABELS[k] for k in SIGNAL_LABELS),
        "lead (combined)",
        "lead (ref V/D)",
        "alarms before the change",
    ]
    rows = [
        [
            row["run"],
            row["failed_at"],
            row["final_val_accuracy"],
            *(row[f"after_{k}"] for k in SIGNAL_LABELS),
            *(
                _lead_cell(lead(row, signal)) if not row["run"].endswith("control") else None
                for signal in ("combined", "reference")
            ),
            ", ".join(SIGNAL_LABELS.get(a, a) for a in row["alarms_before_change"]) or None,
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
        + table(header, rows)
        + f"\nTarget (combined ≥ 3 checkpoints before the val-loss rule on a failing run): met "
        f"on {target['met_on'] or 'none'} of failing runs {target['failing_runs']}; the "
        f"paper's V/D rule meets it on {target['reference_rule_met_on'] or 'none'}.\n"
    )


def lead(row: dict[str, Any], signal: str) -> float:
    """Checkpoints by which ``signal`` fired before the val-loss rule, both counted from the LR
    change on (inf if only ``signal`` fired, -inf if it did not fire)."""
    ours, baseline = row[f"after_{signal}"], row["after_val_loss"]
    if ours is None:
        return -float("inf")
    return float("inf") if baseline is None else float(baseline - ours)


def _lead_cell(lead: float) -> str | int | None:
    if lead == float("inf"):
        return "val-loss rule silent"
    return None if lead == -float("inf") else int(lead)


def _healthy_md(result: dict[str, Any]) -> str:
    s = result["settings"]
    names = list(SIGNAL_LABELS)
    rows = [
        [row["run"], row["final_val_accuracy"], *(row[k] for k in names)] for row in result["rows"]
    ]
    totals = result["totals"]
    rows.append(["runs with an alarm", None, *(totals[k]["runs_with_alarm"] for k in names)])
    return (
        f"## (b) Healthy runs: {len(s['seeds'])} seeds, {s['epochs']} epochs, LR "
        f"{s['base_lr']:g}\n\nCells: number of checkpoints at which each rule fired (every one "
        "is a false alarm).\n\n"
        + table(["run", "final acc", *(SIGNAL_LABELS[k] for k in names)], rows)
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
        cells.append(", ".join(SIGNAL_LABELS.get(a, a) for a in row["alerts"]) or None)
        rows.append(cells)
    summary = result["summary"]
    first = ", ".join(
        f"{SIGNAL_LABELS.get(k, k)} {v}" for k, v in summary["first_firing_after_switch"].items()
    )
    return (
        f"## (c) Continual learning: classes 0–4 for {s['task_epochs']} epochs, then 5–9 "
        f"(switch at checkpoint {result['switch_checkpoint']}), seed {s['seed']}\n\n"
        + table(header, rows)
        + f"\nFirst firing after the switch: {first or 'none'}. Alerts before the switch: "
        f"{', '.join(summary['alerts_before_switch']) or 'none'}.\n"
    )
