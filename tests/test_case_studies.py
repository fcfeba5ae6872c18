"""The audit case studies on reduced settings (feature-space signals, few epochs, one seed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentrycam_widget.benchmarking import case_studies as cs
from sentrycam_widget.plots import SIGNAL_LABELS
from sentrycam_widget.records import Alert

QUICK_INSTABILITY = cs.InstabilitySettings(
    epochs=13, change_epoch=11, jumps=(1.0, 100.0), ramp=None, method=None
)


@pytest.fixture(scope="module")
def instability(tmp_path_factory):
    return cs.instability(QUICK_INSTABILITY, tmp_path_factory.mktemp("cs") / "instability")


@pytest.mark.slow
def test_instability_table_and_the_failing_run(instability):
    rows = {row["run"]: row for row in instability["rows"]}
    assert set(rows) == {"control", "jump_x100"}
    assert instability["change_checkpoint"] == 10
    for row in rows.values():
        assert {"failed_at", "final_val_accuracy", "first_combined", "first_val_loss"} <= set(row)
        assert {f"first_{name}" for name in SIGNAL_LABELS} <= set(row)
    control, failing = rows["control"], rows["jump_x100"]
    assert control["failed_at"] is None and control["final_val_accuracy"] > 0.9
    assert control["first_combined"] is None
    # LR x100 kills the CNN at the jump; the combined alert fires at that checkpoint.
    assert failing["failed_at"] == 10 and failing["final_val_accuracy"] < 0.2
    assert failing["first_combined"] == 10
    assert failing["alarms_before_change"] == []
    assert instability["target"]["failing_runs"] == ["jump_x100"]
    md = cs.markdown({"instability": instability})
    assert "jump_x100" in md and "val-loss rule" in md


def test_failure_checkpoint_is_half_the_best_accuracy():
    assert cs._failure_checkpoint([0.5, 0.9, 0.8, 0.44, 0.1]) == 3
    assert cs._failure_checkpoint([0.5, 0.9, 0.95]) is None


@pytest.mark.slow
def test_healthy_runs_raise_no_combined_alarm(tmp_path):
    settings = cs.HealthySettings(seeds=(0, 1), epochs=13, method=None)
    result = cs.healthy(settings, tmp_path / "healthy")
    assert [row["run"] for row in result["rows"]] == ["seed_0", "seed_1"]
    assert result["totals"]["combined"] == {"alarms": 0, "runs_with_alarm": 0}
    assert all(row["final_val_accuracy"] > 0.9 for row in result["rows"])
    assert set(result["totals"]) >= {"combined", "reference", "val_loss", "fisher_ratio"}


@pytest.mark.slow
def test_continual_learning_forgets_task_one_and_the_signals_see_it(tmp_path):
    result = cs.continual(cs.ContinualSettings(task_epochs=10, method=None), tmp_path / "cl")
    summary = result["summary"]
    assert result["switch_checkpoint"] == 10 and len(result["rows"]) == 20
    assert [row["task"] for row in result["rows"]] == [1] * 10 + [2] * 10
    assert summary["task1_accuracy_before_switch"] > 0.9
    assert summary["task1_accuracy_final"] < 0.5
    assert summary["task1_fisher_features_final"] < summary["task1_fisher_features_before_switch"]
    assert summary["first_firing_after_switch"], "the task switch raised no alert"
    assert min(summary["first_firing_after_switch"].values()) <= 12


def test_results_merge_into_json_and_markdown(tmp_path, instability):
    cs.write_results({"instability": instability}, tmp_path)
    stored = json.loads((tmp_path / "case_studies.json").read_text())
    assert "traces" not in stored["instability"]
    assert stored["instability"]["rows"] == json.loads(json.dumps(instability["rows"]))
    assert "(a) Instability" in (tmp_path / "case_studies.md").read_text()


def test_recorded_runs_are_read_back_not_retrained(instability):
    runs_dir = Path(instability["traces"][0]["run_dir"]).parent
    before = {p: p.stat().st_mtime_ns for p in runs_dir.rglob("*.npz")}
    again = cs.instability(QUICK_INSTABILITY, runs_dir)
    assert again["rows"] == instability["rows"]
    assert {p: p.stat().st_mtime_ns for p in runs_dir.rglob("*.npz")} == before
    (runs_dir / "jump_x100" / "alerts.json").unlink()  # an unfinished run is not overwritten
    with pytest.raises(FileExistsError, match="unfinished run directories"):
        cs.instability(QUICK_INSTABILITY, runs_dir)


@pytest.mark.parametrize(
    ("notebook", "call"),
    [
        ("03_instability.ipynb", "cs.instability(settings"),
        ("04_healthy_runs.ipynb", "cs.healthy(settings"),
        ("05_continual_learning.ipynb", "cs.continual(settings"),
    ],
)
def test_notebooks_run_the_study_with_its_default_settings(notebook, call):
    """The notebooks are not executed here (a full study records 1-5 runs of 30 projected
    epochs: minutes even on 16 cores); they must call the same function on the same settings."""
    cells = json.loads((Path(__file__).parents[1] / "notebooks" / notebook).read_text())["cells"]
    code = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    for source in code:
        compile(source, notebook, "exec")
    program = "\n".join(code)
    assert call in program
    assert "Settings()" in program and "Settings(" not in program.replace("Settings()", "")
    assert any(cell.get("outputs") for cell in cells if cell["cell_type"] == "code")


def test_instability_on_other_seeds_names_runs_by_seed(tmp_path):
    runs = cs.InstabilitySettings(
        epochs=12, change_epoch=11, jumps=(100.0,), ramp=None, method=None
    )
    result = cs.instability_seeds(cs.SeedsSettings(seeds=(1,), runs=runs), tmp_path / "seeds")
    (row,) = result["rows"]
    assert row["run"] == "seed1_jump_x100"
    assert row["failed_at"] == 10 and row["first_combined"] == 10
    assert "(a') Instability: digits CNN, the same on seeds 1" in cs.markdown(
        {"instability_seeds": result}
    )


def test_leads_count_only_alarms_from_the_change_on():
    from sentrycam_widget.alerts import first_firing

    def alert(signal, checkpoint):
        return Alert(checkpoint, checkpoint + 1, signal, "robust", 1.0, 0.5, None, "").to_dict()

    alerts = [
        alert("inter_class_distance_2d", 5),
        alert("combined", 12),
        alert("inter_class_distance_2d", 14),
        alert("val_loss", 16),
    ]
    trace = {
        "name": "jump",
        "scalars": [{"val_accuracy": 0.9}] * 20,
        "alerts": alerts,
        "first_firing": first_firing(alerts),
    }
    row = cs._instability_row(trace, change=10)
    assert row["first_reference"] == 5 and row["after_reference"] == 14
    assert row["alarms_before_change"] == ["inter_class_distance_2d"]
    assert cs.lead(row, "combined") == 4 and cs.lead(row, "reference") == 2
    assert cs.lead(row, "nc1") == -float("inf")
