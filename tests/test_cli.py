"""``python -m sentrycam_widget``: import validation, resumable project, evaluate, export, errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sentrycam_widget.cli import main
from sentrycam_widget.metrics import frame_metrics
from sentrycam_widget.records import Frame
from sentrycam_widget.store import RunStore

T, N, D, C = 3, 90, 8, 3


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Three drifting Gaussian clusters in D dims, with a linear head per checkpoint."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(C), N // C).astype(np.int64)
    centres = rng.normal(scale=4.0, size=(C, D))
    features = np.stack(
        [centres[labels] * (1 + 0.2 * t) + rng.normal(size=(N, D)) for t in range(T)]
    ).astype(np.float32)
    head_W = np.stack([centres * (1 + 0.2 * t) for t in range(T)]).astype(np.float32)
    head_b = np.zeros((T, C), dtype=np.float32)
    return {
        "features": features,
        "labels": labels,
        "head_W": head_W,
        "head_b": head_b,
        "val_loss": np.array([1.0, 0.7, 0.5]),
        "epochs": np.array([0, 2, 4]),
    }


def _write(tmp_path, arrays, name="run.npz"):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_import_happy_path_computes_logits_from_head(tmp_path, capsys):
    arrays = _arrays()
    run_dir = tmp_path / "run"
    assert main(["import", str(_write(tmp_path, arrays)), str(run_dir)]) == 0
    assert "imported 3 checkpoints" in capsys.readouterr().out
    store = RunStore.open(run_dir)
    assert store.checkpoint_indices() == [0, 1, 2]
    assert store.epochs() == {0: 0, 1: 2, 2: 4}
    last = store.checkpoint(2)
    expected = arrays["features"][2] @ arrays["head_W"][2].T + arrays["head_b"][2]
    np.testing.assert_allclose(last.logits, expected, rtol=1e-5, atol=1e-4)
    assert last.scalars["val_loss"] == pytest.approx(0.5)
    np.testing.assert_array_equal(store.labels, arrays["labels"])


def _without(key):
    arrays = _arrays()
    del arrays[key]
    return arrays


def _with(**changes):
    arrays = _arrays()
    arrays.update(changes)
    return arrays


def _nan_features():
    features = _arrays()["features"].copy()
    features[1, 5, 2] = np.nan
    return _with(features=features)


BAD_IMPORTS = {
    "missing features": (_without("features"), "features"),
    "missing labels": (_without("labels"), "labels"),
    "features 2-d": (_with(features=np.zeros((N, D), np.float32)), "features"),
    "features NaN": (_nan_features(), "features"),
    "labels float": (_with(labels=np.zeros(N) + 0.5), "labels"),
    "labels wrong length": (_with(labels=np.arange(N - 1) % C), "labels"),
    "labels one class": (_with(labels=np.zeros(N, np.int64)), "labels"),
    "logits wrong shape": (_with(logits=np.zeros((T, N - 1, C), np.float32)), "logits"),
    "logits inf": (_with(logits=np.full((T, N, C), np.inf, np.float32)), "logits"),
    "head_W wrong D": (_with(head_W=np.zeros((T, C, D + 1), np.float32)), "head_W"),
    "head_W vs logits": (_with(logits=np.zeros((T, N, C + 1), np.float32)), "head_W"),
    "head_b alone": (_without("head_W"), "head_b"),
    "head_b wrong shape": (_with(head_b=np.zeros((T, C + 2), np.float32)), "head_b"),
    "val_loss wrong length": (_with(val_loss=np.ones(T + 1)), "val_loss"),
    "val_loss NaN": (_with(val_loss=np.array([1.0, np.nan, 0.5])), "val_loss"),
    "epochs not increasing": (_with(epochs=np.array([0, 2, 2])), "epochs"),
    "epochs float": (_with(epochs=np.array([0.0, 1.0, 2.0])), "epochs"),
    "unknown key": (_with(feature=np.zeros(3)), "feature"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMPORTS))
def test_import_bad_key_exits_2_naming_the_key(tmp_path, capsys, case):
    arrays, key = BAD_IMPORTS[case]
    run_dir = tmp_path / "run"
    assert main(["import", str(_write(tmp_path, arrays)), str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"'{key}'" in err or f" {key}" in err, err
    assert "Traceback" not in err
    assert not (run_dir / "manifest.json").exists()


def test_import_of_a_non_npz_file_names_the_file(tmp_path, capsys):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not a zip file")
    assert main(["import", str(bad), str(tmp_path / "run")]) == 2
    assert "broken.npz" in capsys.readouterr().err


def test_module_entry_point_prints_help_with_examples():
    result = subprocess.run(
        [sys.executable, "-m", "sentrycam_widget", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    for command in ("demo", "import", "project", "evaluate", "export", "warmup"):
        assert command in result.stdout
    assert "examples:" in result.stdout


def _imported(tmp_path) -> str:
    run_dir = tmp_path / "run"
    assert main(["import", str(_write(tmp_path, _arrays())), str(run_dir)]) == 0
    return str(run_dir)


def test_unknown_method_lists_the_available_ones(tmp_path, capsys):
    run_dir = _imported(tmp_path)
    for command in (["project", run_dir], ["evaluate", run_dir], ["export", run_dir, "--npz", "x"]):
        capsys.readouterr()
        assert main([*command, "--method", "tsne"]) == 2
        err = capsys.readouterr().err
        assert "unknown projection method 'tsne'" in err and "sentrycam" in err


def test_evaluate_and_export_without_frames_say_to_project_first(tmp_path, capsys):
    run_dir = _imported(tmp_path)
    assert main(["evaluate", run_dir, "--json"]) == 2
    assert "project" in capsys.readouterr().err
    assert main(["export", run_dir, "--npz", str(tmp_path / "out.npz")]) == 2
    assert "no 'sentrycam' frames" in capsys.readouterr().err
    assert not (tmp_path / "out.npz").exists()


def test_damaged_run_directory_exits_2(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "manifest.json").write_text("{not json")
    assert main(["evaluate", str(tmp_path / "run")]) == 2
    assert "manifest.json" in capsys.readouterr().err


@pytest.fixture(scope="module")
def projected_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("projected")
    run_dir = _imported(tmp_path)
    assert main(["project", run_dir, "--method", "sentrycam"]) == 0
    return run_dir


def _frame_files(run_dir):
    return {
        p.name: p.stat().st_mtime_ns for p in (Path(run_dir) / "frames" / "sentrycam").glob("*.npz")
    }


@pytest.mark.slow
def test_project_is_resumable(projected_run, capsys):
    before = _frame_files(projected_run)
    assert sorted(before) == ["000000.npz", "000001.npz", "000002.npz"]
    capsys.readouterr()
    assert main(["project", projected_run]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert _frame_files(projected_run) == before
    (Path(projected_run) / "frames" / "sentrycam" / "000002.npz").unlink()
    assert main(["project", projected_run]) == 0
    out = capsys.readouterr().out
    assert "projecting 1 checkpoint(s)" in out and "[1/1] sentrycam checkpoint 2" in out
    after = _frame_files(projected_run)
    assert {k: after[k] for k in ("000000.npz", "000001.npz")} == {
        k: before[k] for k in ("000000.npz", "000001.npz")
    }
    assert "000002.npz" in after


@pytest.mark.slow
def test_evaluate_json_reports_every_checkpoint_and_temporal_metrics(projected_run, capsys):
    capsys.readouterr()
    assert main(["evaluate", projected_run, "--method", "sentrycam", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [row["epoch"] for row in report["checkpoints"]] == [0, 2, 4]
    for row in report["checkpoints"]:
        metrics = row["metrics"]
        assert 0.5 < metrics["trustworthiness"] <= 1.0
        assert 0.0 <= metrics["knn_preservation"] <= 1.0
        assert 0.0 <= metrics["ppr"] <= 1.0
    assert report["temporal"]["n_checkpoints"] == 3
    assert len(report["temporal"]["displacement"]) == 2
    assert report["temporal"]["temporal_nn"] is None  # NaN becomes null: strict JSON


@pytest.mark.slow
def test_export_npz_matches_stored_frames(projected_run, tmp_path):
    out = tmp_path / "frames.npz"
    assert main(["export", projected_run, "--method", "sentrycam", "--npz", str(out)]) == 0
    with np.load(out) as data:
        assert set(data.files) == {"emb", "epochs", "indices", "recon_pred"}
        assert data["emb"].shape == (T, N, 2) and data["emb"].dtype == np.float32
        assert data["recon_pred"].shape == (T, N)
        np.testing.assert_array_equal(data["epochs"], [0, 2, 4])
        store = RunStore.open(projected_run)
        np.testing.assert_array_equal(data["emb"][1], store.frame("sentrycam", 1).embedding)


def test_evaluate_computes_metrics_missing_from_stored_frames(tmp_path, capsys):
    run_dir = _imported(tmp_path)
    store = RunStore.open(run_dir)
    for index in store.checkpoint_indices():
        features = store.checkpoint(index).features
        store.append_frame(Frame("sentrycam", index, 2 * index, features[:, :2]))
    capsys.readouterr()
    assert main(["evaluate", run_dir, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    expected = frame_metrics(store.checkpoint(1), store.frame("sentrycam", 1))
    got = report["checkpoints"][1]["metrics"]
    assert got["trustworthiness"] == pytest.approx(expected["trustworthiness"])
    assert "ppr" not in got  # no inverse, no PPR
    assert main(["evaluate", run_dir]) == 0
    table = capsys.readouterr().out
    assert "T(15)" in table and "temporal ranking" in table


@pytest.mark.slow
def test_warmup_reports_its_timings(capsys):
    assert main(["warmup"]) == 0
    assert "umap-learn ready" in capsys.readouterr().out


@pytest.mark.slow
def test_export_html_writes_one_offline_file_with_every_frame(projected_run, tmp_path, capsys):
    out = tmp_path / "run.html"
    assert main(["export", projected_run, "--html", str(out)]) == 0
    html = out.read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    assert not re.search(r"<(script|link|img)\b[^>]*\b(src|href)=", html)  # all inline
    assert "wrote the offline viewer" in capsys.readouterr().out


def test_export_needs_exactly_one_target(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["export", _imported(tmp_path)])
    assert "--npz" in capsys.readouterr().err


@pytest.mark.slow
def test_audit_json_reports_alerts_and_first_firings(projected_run, capsys):
    capsys.readouterr()
    assert main(["audit", projected_run, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"alerts", "first_firing", "note"}
    assert {"combined", "val_loss", "reference"} <= set(report["first_firing"])
    assert all(v is None or isinstance(v, int) for v in report["first_firing"].values())
    assert (Path(projected_run) / "alerts.json").is_file()
    assert main(["audit", projected_run]) == 0
    assert "first" in capsys.readouterr().out.lower()


def test_bench_runs_the_installed_comparison(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert "--quick" in capsys.readouterr().out


# ------------------------------------------------------------------ issue 11: errors and damage


def _one_line_error(capsys, *names: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for name in names:
        assert name in lines[0], err
    return lines[0]


def test_cli_io_failures_are_one_line_naming_the_file_and_debug_adds_the_traceback(
    tmp_path, capsys
):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    assert main(["import", str(empty), str(tmp_path / "a")]) == 2
    _one_line_error(capsys, "empty.npz")
    good = _write(tmp_path, _arrays())
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert main(["import", str(truncated), str(tmp_path / "b")]) == 2
    _one_line_error(capsys, "truncated.npz")
    a_file = tmp_path / "plain.txt"
    a_file.write_text("not a directory")
    assert main(["import", str(good), str(a_file)]) == 2
    _one_line_error(capsys, "plain.txt")
    for command in (["project", str(a_file)], ["evaluate", str(a_file)]):
        assert main(command) == 2
        _one_line_error(capsys, "plain.txt")
    run_dir = _imported(tmp_path)
    capsys.readouterr()
    missing = tmp_path / "no" / "such" / "dir" / "out.html"
    assert main(["export", run_dir, "--html", str(missing)]) == 2
    _one_line_error(capsys, str(missing.parent))
    assert main(["--debug", "import", str(empty), str(tmp_path / "c")]) == 2
    assert "Traceback" in capsys.readouterr().err
    assert main(["import", str(truncated), str(tmp_path / "d"), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_run_directory_fails_before_computing(tmp_path, capsys):
    run_dir = Path(_imported(tmp_path))
    for directory in (run_dir / "frames", run_dir):
        directory.chmod(0o555)
    try:
        for command in (["project", str(run_dir)], ["audit", str(run_dir)]):
            capsys.readouterr()
            assert main(command) == 2
            _one_line_error(capsys, "permission denied")
    finally:
        for directory in (run_dir, run_dir / "frames"):
            directory.chmod(0o755)


def test_a_failed_import_leaves_no_run_and_the_same_command_then_works(tmp_path, capsys):
    arrays = _arrays()
    arrays["logits"] = np.zeros((T, N, C - 1), np.float32)  # fewer classes than the labels
    run_dir = tmp_path / "run"
    assert main(["import", str(_write(tmp_path, arrays)), str(run_dir)]) == 2
    _one_line_error(capsys, "logits")
    assert not run_dir.exists()
    arrays["logits"] = np.zeros((T, N, C), np.float32)
    assert main(["import", str(_write(tmp_path, arrays)), str(run_dir)]) == 0
    assert RunStore.open(run_dir).checkpoint_indices() == [0, 1, 2]


def test_imports_later_steps_could_not_use_are_refused(tmp_path, capsys):
    """Issue 11 item 8: each fails at import, naming the problem, and writes nothing."""
    few = _arrays()
    few["features"], few["labels"] = few["features"][:, ::3], few["labels"][::3]  # 30 points
    many_classes = _arrays()
    many_classes["labels"] = many_classes["labels"] + 70_000
    del many_classes["head_W"], many_classes["head_b"]
    constant = _arrays()
    constant["features"][1] = 1.0
    huge = _arrays()
    huge["features"][2, 0, 0] = 1e19
    expected = {
        "few": (few, "at least 31"),
        "many_classes": (many_classes, "0..65535"),
        "constant": (constant, "checkpoint(s) [1]"),
        "huge": (huge, "rescale"),
    }
    for name, (arrays, message) in expected.items():
        run_dir = tmp_path / name
        assert main(["import", str(_write(tmp_path, arrays, f"{name}.npz")), str(run_dir)]) == 2
        _one_line_error(capsys, message)
        assert not run_dir.exists()


_FAST = {"cold_steps": 60, "warm_steps": 20, "resolution": 20}


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


def test_evaluate_skips_a_frame_with_nan_coordinates_naming_it_and_strict_fails(tmp_path, capsys):
    """A readable frame whose points are partly NaN/inf (a diverged projection, an imported
    layout) is left out of the metrics with a warning naming its file, not the whole run."""
    from sentrycam_widget.pipeline import project_run

    run_dir = _imported(tmp_path)
    store = RunStore.open(run_dir)
    project_run(store, "sentrycam", **_FAST)
    frame = store.frame("sentrycam", 1)
    frame.embedding[::3] = np.nan
    frame.embedding[1, 0] = np.inf
    store.append_frame(frame, replace=True)
    capsys.readouterr()
    missing = f"{len(range(0, N, 3)) + 1} of {N} points have no coordinates"
    with pytest.warns(UserWarning, match=rf"000001\.npz: {missing}"):
        assert main(["evaluate", run_dir, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [row["index"] for row in report["checkpoints"]] == [0, 2]
    assert missing in report["skipped"][0]
    assert main(["evaluate", run_dir, "--strict"]) == 2
    _one_line_error(capsys, "000001.npz", missing)


def test_damaged_frames_are_recomputed_by_project_skipped_by_evaluate_and_export(tmp_path, capsys):
    from sentrycam_widget.pipeline import project_run

    run_dir = _imported(tmp_path)
    project_run(RunStore.open(run_dir), "sentrycam", **_FAST)
    frame_file = Path(run_dir) / "frames" / "sentrycam" / "000001.npz"
    _truncate(frame_file)
    capsys.readouterr()
    with pytest.warns(UserWarning, match="000001.npz"):
        assert main(["evaluate", run_dir, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [row["index"] for row in report["checkpoints"]] == [0, 2]
    assert "000001.npz" in report["skipped"][0]
    assert main(["evaluate", run_dir, "--strict"]) == 2
    _one_line_error(capsys, "000001.npz")
    out = tmp_path / "frames.npz"
    with pytest.warns(UserWarning, match="000001.npz"):
        assert main(["export", run_dir, "--npz", str(out)]) == 0
    with np.load(out) as exported:
        assert exported["indices"].tolist() == [0, 2]
    assert main(["export", run_dir, "--npz", str(tmp_path / "strict.npz"), "--strict"]) == 2
    _one_line_error(capsys, "000001.npz")
    assert not (tmp_path / "strict.npz").exists()
    with pytest.warns(UserWarning, match="recomputing damaged frame 1"):
        project_run(RunStore.open(run_dir), "sentrycam", **_FAST)
    store = RunStore.open(run_dir)
    assert store.frame("sentrycam", 1).embedding.shape == (N, 2)
    assert store.damaged == []
    _truncate(frame_file)
    capsys.readouterr()
    with pytest.warns(UserWarning, match="recomputing damaged frame 1"):
        assert main(["project", run_dir]) == 0
    out = capsys.readouterr().out
    assert "frame 1 is damaged, recomputing it" in out and "000001.npz" in out
    assert "[1/1] sentrycam checkpoint 1" in out
    assert RunStore.open(run_dir).frame("sentrycam", 1).index == 1


def test_cli_warnings_are_one_line_and_debug_shows_them_in_full():
    import warnings

    from sentrycam_widget._cli_messages import warnings_shown

    def shown(debug: bool) -> str:
        with warnings_shown(debug=debug):
            return warnings.formatwarning("skipping run/x.npz:\n  damaged", UserWarning, "c.py", 3)

    assert shown(debug=False) == "warning: skipping run/x.npz: damaged\n"
    assert "c.py:3" in shown(debug=True)
    assert "c.py:3" in warnings.formatwarning("m", UserWarning, "c.py", 3)  # restored after
