"""The early-alert study: scenario runs (real training, reduced) and the lead/false-alarm table."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from sentrycam_widget.benchmarking import early_alerts as ea
from sentrycam_widget.benchmarking.alert_scenarios import RunSpec, run_scenario


def _trace(scenario: str, early: list[tuple[str, int]], epoch: list[tuple[str, int]]):
    return {
        "name": f"{scenario}-cnn-s0",
        "spec": {
            "scenario": scenario,
            "arch": "cnn",
            "seed": 0,
            "change_epoch": 4,
            "project": True,
        },
        "epoch_steps": [10, 20, 30, 40, 50, 60, 70, 80],
        "scalars": [{"val_loss": 0.5, "val_accuracy": 0.9}] * 8,
        "epoch_alerts": [{"signal": s, "step": step} for s, step in epoch],
        "early_alerts": [{"signal": s, "step": step} for s, step in early],
    }


def test_rows_count_leads_from_the_change_and_alarms_before_it():
    trace = _trace(
        "ramp_x2",
        early=[("drift", 15), ("drift", 35), ("early_combined", 42)],
        epoch=[("val_loss", 70), ("intra_class_variance_2d", 60), ("combined", 80)],
    )
    row = ea.run_row(trace)
    assert row["change_step"] == 30 and row["change_checkpoint"] == 3
    assert row["first"]["early_combined"] == {"checkpoint": 4, "step": 42}
    assert row["first"]["drift"] == {"checkpoint": 3, "step": 35}
    assert row["first"]["reference"] == {"checkpoint": 5, "step": 60}
    assert row["false_alarms"]["drift"] == 1 and row["false_alarms"]["early_combined"] == 0
    assert ea.lead(row, "early_combined") == 2 and ea.lead(row, "early_combined", "step") == 28
    assert ea.lead(row, "fisher_ratio") is None
    healthy = ea.run_row(_trace("healthy", early=[("drift", 65)], epoch=[("val_loss", 70)]))
    summary = ea.summarise([row, healthy])
    assert summary["target"]["early_combined_two_earlier"] == 1
    assert summary["target"]["healthy_runs_with_val_loss_alarm"] == 1
    assert summary["scenarios"]["healthy"]["rules"]["drift"] == {"runs_with_alarm": 1, "alarms": 1}
    assert "ramp_x2" in ea.early_md(
        {"settings": asdict(ea.EarlySettings()), "rows": [row], **summary}
    )


def test_the_suite_has_every_scenario_on_two_architectures_and_enough_healthy_runs():
    specs = ea.EarlySettings().specs()
    failing = [s for s in specs if s.scenario != "healthy"]
    for scenario in (
        "ramp_x1.2",
        "ramp_x1.5",
        "ramp_x2",
        "label_noise",
        "input_shift",
        "class_incremental",
        "collapse",
    ):
        runs = [s for s in failing if s.scenario == scenario]
        assert len({s.arch for s in runs}) == 2 and len({s.seed for s in runs}) >= 3
    assert sum(s.scenario == "healthy" and not s.label_free for s in specs) >= 10


def test_the_held_out_seeds_are_disjoint_from_the_reported_ones_and_unprojected():
    held_out, reported = ea.HELD_OUT.specs(), ea.EarlySettings().specs()
    assert {s.seed for s in held_out}.isdisjoint({s.seed for s in reported})
    assert sum(s.scenario == "healthy" for s in held_out) == 50
    assert sum(s.scenario == "healthy" and s.label_free for s in held_out) == 10
    assert not any(s.project for s in held_out)
    assert {s.name for s in reported} >= {"healthy-ae_cnn-s2", "healthy-mlp-s4"}


@pytest.mark.slow
def test_class_incremental_run_names_forgotten_old_classes():
    trace = run_scenario(RunSpec("class_incremental", "mlp", 0, epochs=16, project=False))
    forgotten = {a["class_index"] for a in trace["early_alerts"] if a["signal"] == "class_accuracy"}
    assert forgotten and forgotten <= {0, 1, 2, 3, 4}
    change_step = trace["epoch_steps"][9]
    assert all(a["step"] > change_step for a in trace["early_alerts"])


@pytest.mark.slow
def test_label_free_collapse_run_alerts_without_labels():
    trace = run_scenario(RunSpec("collapse", "ae_mlp", 0, epochs=20, project=False))
    assert all("probe_accuracy" not in r for r in trace["early_records"])
    signals = {a["signal"] for a in trace["early_alerts"]}
    assert signals and signals <= {"drift", "feature_norm", "effective_rank", "early_combined"}


@pytest.mark.slow
def test_label_noise_run_lowers_the_probe_margin_and_replays_to_the_same_alerts():
    trace = run_scenario(RunSpec("label_noise", "mlp", 0, epochs=16, project=False))
    steps = trace["epoch_steps"]
    before = [r["margin"] for r in trace["early_records"] if steps[8] < r["step"] <= steps[9]]
    after = [r["margin"] for r in trace["early_records"] if r["step"] > steps[14]]
    assert min(before) > 0.5 and max(after) < min(before) - 0.2  # the head hedges
    margin = [a for a in trace["early_alerts"] if a["signal"] == "margin"]
    assert margin and margin[0]["step"] > steps[9]  # after the change, not before
    assert ea.replay(trace)["early_alerts"] == trace["early_alerts"]
