"""benchmarks/compare.py on reduced settings: every method gets every number, files are complete."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sentrycam_widget.benchmarking import compare

PER_METHOD = (
    "median_s",
    "first_frame_s",
    "trustworthiness",
    "continuity",
    "knn_preservation",
    "knn_count_self",
    "ppr",
    "temporal_ranking",
    "displacement_mean",
)
WITH_INVERSE = {"sentrycam", "sentrycam-spec", "dvi"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    threads = torch.get_num_threads()
    assert compare.main(["--quick", "--out", str(out)]) == 0
    assert torch.get_num_threads() == threads  # the benchmark's one thread is not left behind
    return out, json.loads((out / "compare.json").read_text())


@pytest.mark.slow
def test_every_method_has_every_metric_on_both_runs(quick):
    _, results = quick
    assert list(results["runs"]) == ["digits", "mlp600"]
    assert results["machine"]["torch_threads"] == 1
    assert len(results["machine"]["load_average_before"]) == 3
    assert {"import_s", "umap_fit_s"} <= set(results["warm_up_s"])
    for run in results["runs"].values():
        assert run["n_checkpoints"] == 3
        assert set(run["methods"]) == set(compare.METHODS)
        for method, m in run["methods"].items():
            assert set(PER_METHOD) <= set(m)
            assert len(m["per_checkpoint_s"]) == 3 and m["median_s"] > 0
            for key in ("trustworthiness", "continuity", "knn_preservation"):
                assert 0.0 <= m[key] <= 1.0
                assert len(m["per_checkpoint"][key]) == 3
            assert 1.0 <= m["knn_count_self"] <= 15.0
            assert -1.0 <= m["temporal_ranking"] <= 1.0
            assert len(m["displacement"]) == 2 and m["displacement_mean"] >= 0
            if method in WITH_INVERSE:
                assert 0.0 <= m["ppr"] <= 1.0
            else:
                assert m["ppr"] is None  # UMAP has no inverse: no PPR, not a made-up one


@pytest.mark.slow
def test_targets_follow_from_the_numbers(quick):
    _, results = quick
    runs, targets = results["runs"], results["targets"]
    assert len(targets) == 2 + 3 * len(runs)
    latency = [t for t in targets if "s/checkpoint" in t["target"]]
    assert {t["run"] for t in latency} == {"digits"}  # the largest quick run (1,797 points)
    for t in latency:
        assert t["value"] == pytest.approx(t["sentrycam"] / t["baseline"])
        assert t["met"] == (t["value"] <= (0.2 if "UMAP" in t["target"] else 0.5))
    for t in targets:
        if t in latency:
            continue
        assert t["value"] == pytest.approx(t["sentrycam"] - t["baseline"])
        if "ranking" in t["target"]:
            assert t["met"] == (t["value"] > 0)
        else:
            assert t["met"] == (t["value"] >= (-0.03 if "trust" in t["target"] else -0.02))
    ranking = next(t for t in targets if "ranking" in t["target"] and t["run"] == "digits")
    assert ranking["baseline"] == runs["digits"]["methods"]["umap-independent"]["temporal_ranking"]


@pytest.mark.slow
def test_markdown_has_a_row_per_run_and_method_and_every_target(quick):
    out, results = quick
    text = (out / "compare.md").read_text()
    rows = [
        line for line in text.splitlines() if line.startswith("| digits (") or "mlp600 (" in line
    ]
    assert len(rows) == 2 * len(compare.METHODS)
    assert sum("– (no inverse)" in row for row in rows) == 6  # the three UMAPs on both runs
    verdicts = text.count("| met |") + text.count("| **not met** |")
    assert verdicts == len(results["targets"])
    assert "load average" in text


@pytest.mark.slow
def test_figure_has_a_panel_per_method_and_checkpoint_and_marks_missing_backgrounds(quick):
    out, _ = quick
    image = np.asarray(Image.open(out / "compare.png").convert("RGB"))
    # 4 method rows × (2 runs × early/middle/late) columns of 2.6 × 2.7 inch panels at 100 dpi
    assert image.shape == (4 * 270, 6 * 260, 3)
    grey = (image == 0xEE).all(axis=2)  # the face colour of panels without a background
    top, bottom = grey[: image.shape[0] // 2], grey[image.shape[0] // 2 :]
    assert bottom.mean() > 0.3 and top.mean() < 0.05


def test_too_few_epochs_for_temporal_ranking_are_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        compare.main(["--quick", "--epochs", "2"])
    assert stop.value.code == 2
    assert "--epochs must be >= 3" in capsys.readouterr().err
