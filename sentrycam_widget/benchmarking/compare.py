"""SentryCam (default and as SPEC §2 specifies it) against DVI and UMAP on the same checkpoints.

Run ``python benchmarks/compare.py`` (``--help`` for options). In one process, on two recorded
runs — the demo's digits CNN (N = 1,797, D = 64) and a real MLP on generated data
(N = 10,000, D = 256; ``benchmarks/latency.py`` records both) — every method projects every
checkpoint through the same pipeline (``pipeline.project_run``: warm-started where the method
is, frames scored by ``metrics.frame_metrics``), and the run's frames are scored over time by
``metrics.temporal_metrics``. Reported per run and method:

* median per-checkpoint latency (the projector's wall time, checkpoints after the first) and
  time to first frame (the first checkpoint, in process). umap-learn's import and numba
  compilation are paid once, untimed for the methods, by a warm-up on tiny data before anything
  is measured, and are reported on their own;
* trustworthiness(15), continuity(15), kNN preservation(15) both ways (the fraction with self
  excluded, and the papers' count with self included), PPR (methods with an inverse), all
  averaged over checkpoints;
* temporal ranking and mean displacement over the run's checkpoints.

Writes ``compare.json``, ``compare.md`` (the README table plus the issue-4 targets, met or
not, computed from the numbers) and ``compare.png`` (every method's frame at an early, middle
and late checkpoint of each run). Torch runs on one thread (the live monitor's worker setting);
UMAP runs three ways: warm-started from the previous frame unseeded on all cores
(``umap-unseeded``, its fastest honest setting, which the latency target is judged against),
the same seeded (single-threaded, reproducible), and independently per checkpoint. The JSON
records the load average before and after: wall-clock numbers grow with it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._environment import RESULTS, environment, version
from .latency import record_runs, spread_indices

METHODS = ("sentrycam", "sentrycam-spec", "dvi", "umap-unseeded", "umap", "umap-independent")
LABELS = {
    "sentrycam": "SentryCam",
    "sentrycam-spec": "SentryCam as in SPEC §2",
    "dvi": "DVI",
    "umap-unseeded": "UMAP (warm-started, unseeded, all cores)",
    "umap": "UMAP (warm-started, seeded)",
    "umap-independent": "UMAP (independent)",
}
FRAME_METRICS = ("trustworthiness", "continuity", "knn_preservation", "knn_count_self", "ppr")
TEMPORAL_METRICS = ("temporal_ranking", "displacement_mean")
# --quick: small budgets so the whole comparison runs in well under a minute (for the tests)
_QUICK_OPTIONS: dict[str, dict[str, Any]] = {
    "sentrycam": {"cold_steps": 60, "warm_steps": 20, "resolution": 40},
    "sentrycam-spec": {"cold_steps": 60, "warm_steps": 20, "resolution": 40},
    "dvi": {"cold_epochs": 2.0, "warm_epochs": 1.0, "max_steps": 60, "resolution": 40},
    "umap-unseeded": {"n_epochs": 30},
    "umap": {"n_epochs": 30},
    "umap-independent": {"n_epochs": 30},
}
_QUICK_MLP = {"n_probe": 600, "n_samples": 1200, "width": 32}


@dataclass(frozen=True)
class Settings:
    """What one comparison runs: checkpoints per run (= epochs), sizes, budgets, seed, threads."""

    epochs: int = 6
    quick: bool = False
    seed: int = 0
    threads: int = 1
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)


# ------------------------------------------------------------------------------- measuring


def compare(
    work_dir: Path, settings: Settings, progress: Callable[[str], None] = print
) -> tuple[dict[str, Any], list[_Panel]]:
    """Record both runs, project them with every method; JSON-ready results and figure panels."""
    import torch

    load_before = os.getloadavg()
    started = time.perf_counter()
    runs = _record(work_dir, settings)
    progress(f"recorded {', '.join(runs)} in {time.perf_counter() - started:.0f} s")
    largest = max(_n_points(run_dir) for run_dir in runs.values())
    warm_up = _warm_up(settings.seed, largest)
    progress(f"warm-up (umap import, numba): {warm_up}")
    results, panels = {}, []
    for name, run_dir in runs.items():
        results[name], run_panels = _compare_run(name, run_dir, settings, progress)
        panels += run_panels
    summary = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "umap_learn": version("umap-learn"),
            "commit": environment()["commit"],
            "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()),
        },
        "settings": {**asdict(settings), "method_options": _options(settings)},
        "warm_up_s": warm_up,
        "runs": results,
        "targets": targets(results),
        "total_s": time.perf_counter() - started,
    }
    return summary, panels


def _record(work_dir: Path, settings: Settings) -> dict[str, Path]:
    if not settings.quick:
        return record_runs(work_dir, settings.epochs, settings.epochs, settings.seed)
    from ..demo import make_mlp_run, record_digits_run

    n = _QUICK_MLP["n_probe"]
    return {
        "digits": record_digits_run(
            work_dir / "digits", epochs=settings.epochs, seed=settings.seed
        ),
        f"mlp{n}": make_mlp_run(
            work_dir / f"mlp{n}", epochs=settings.epochs, seed=settings.seed, **_QUICK_MLP
        ),
    }


def _n_points(run_dir: Path) -> int:
    from ..store import RunStore

    return RunStore.open(run_dir).n_points


def _warm_up(seed: int, largest_n: int) -> dict[str, float]:
    """Import umap-learn and compile (or load from numba's cache) its code, on tiny data.

    Returns the seconds of each part; pynndescent (which compiles in every process) only when
    a run is large enough for umap-learn to use it. umap-learn's numba OpenMP pool resets
    torch's thread count (see ``projection.umap``), so it is restored afterwards.
    """
    import torch

    from ..warmup import PYNNDESCENT_FROM, warmup

    threads = torch.get_num_threads()
    try:
        timings = warmup(pynndescent=largest_n > PYNNDESCENT_FROM, seed=seed)
    finally:
        torch.set_num_threads(threads)
    return {name: round(seconds, 3) for name, seconds in timings.items()}


def _options(settings: Settings) -> dict[str, dict[str, Any]]:
    base = _QUICK_OPTIONS if settings.quick else {}
    return {m: {**base.get(m, {}), **settings.method_options.get(m, {})} for m in METHODS}


def _compare_run(
    name: str, run_dir: Path, settings: Settings, progress: Callable[[str], None]
) -> tuple[dict[str, Any], list[_Panel]]:
    from ..pipeline import project_run
    from ..store import RunStore

    store = RunStore.open(run_dir)
    indices = store.checkpoint_indices()
    features = [store.checkpoint(i).features for i in indices]
    options = _options(settings)
    methods, panels = {}, []
    for method in METHODS:
        frames = project_run(
            store, method, threads=settings.threads, seed=settings.seed, **options[method]
        )
        methods[method] = _method_summary(frames, features)
        panels += _panels(name, store, method, frames)
        progress(_progress_line(name, method, methods[method]))
    summary = {
        "n_points": store.n_points,
        "n_features": store.n_features,
        "n_checkpoints": len(indices),
        "checkpoints": indices,
        "methods": methods,
    }
    return summary, panels


def _method_summary(frames: list, features: list[np.ndarray]) -> dict[str, Any]:
    """Latency, per-frame metrics (per checkpoint and mean) and temporal metrics of one method."""
    from ..metrics import temporal_metrics

    latencies = [f.timings["total"] for f in frames]
    per_frame = {key: [f.metrics.get(key) for f in frames] for key in FRAME_METRICS}
    temporal = temporal_metrics(features, [f.embedding for f in frames])
    return {
        "per_checkpoint_s": latencies,
        "first_frame_s": latencies[0],
        "median_s": statistics.median(latencies[1:] if len(latencies) > 1 else latencies),
        "per_checkpoint": per_frame,
        **{key: _mean_or_none(values) for key, values in per_frame.items()},
        "temporal_ranking": _finite_or_none(temporal["temporal_ranking"]),
        "temporal_ranking_per_ref": temporal["temporal_ranking_per_ref"],
        "displacement": temporal["displacement"],
        "displacement_mean": _finite_or_none(temporal["displacement_mean"]),
    }


def _mean_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _progress_line(run: str, method: str, summary: dict[str, Any]) -> str:
    ppr = summary["ppr"]
    return (
        f"{run} {method}: {summary['median_s']:.2f} s/checkpoint, first "
        f"{summary['first_frame_s']:.2f} s, T {summary['trustworthiness']:.3f}, "
        f"PPR {'–' if ppr is None else f'{ppr:.3f}'}, "
        f"ranking {summary['temporal_ranking']}"
    )


# ------------------------------------------------------------------------------- targets


def targets(runs: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 4's targets, each with the numbers it was judged on and ``met``.

    Latency on the largest run (N = 10,000 in the full benchmark); the others on every run.
    """
    largest = max(runs, key=lambda name: runs[name]["n_points"])
    rows = [
        _ratio_target(largest, runs[largest], "umap-unseeded", 1 / 5),
        _ratio_target(largest, runs[largest], "dvi", 1 / 2),
    ]
    for name, run in runs.items():
        rows.append(_gap_target(name, run, "trustworthiness", "umap", -0.03))
        rows.append(_gap_target(name, run, "temporal_ranking", "umap-independent", None))
        rows.append(_gap_target(name, run, "ppr", "dvi", -0.02))
    return rows


def _ratio_target(name: str, run: dict[str, Any], baseline: str, most: float) -> dict[str, Any]:
    ours, theirs = run["methods"]["sentrycam"]["median_s"], run["methods"][baseline]["median_s"]
    ratio = ours / theirs
    return {
        "target": f"SentryCam s/checkpoint ≤ {_fraction(most)} of {LABELS[baseline]}'s "
        f"(N = {run['n_points']:,})",
        "run": name,
        "sentrycam": ours,
        "baseline": theirs,
        "value": ratio,
        "met": ratio <= most,
    }


def _gap_target(
    name: str, run: dict[str, Any], metric: str, baseline: str, least: float | None
) -> dict[str, Any]:
    """SentryCam minus baseline on ``metric``: ≥ ``least``, or strictly above with None."""
    ours, theirs = run["methods"]["sentrycam"][metric], run["methods"][baseline][metric]
    gap = None if ours is None or theirs is None else ours - theirs
    met = gap is not None and (gap > 0 if least is None else gap >= least)
    wanted = "above" if least is None else f"no more than {-least:.2f} below"
    return {
        "target": f"SentryCam {metric.replace('_', ' ')} {wanted} {LABELS[baseline]}'s",
        "run": name,
        "sentrycam": ours,
        "baseline": theirs,
        "value": gap,
        "met": met,
    }


def _fraction(value: float) -> str:
    return f"1/{round(1 / value)}"


# ------------------------------------------------------------------------------- report


def markdown(results: dict[str, Any]) -> str:
    """The README table (one row per run and method), the targets and how it was measured."""
    lines = [
        "| run | method | s/checkpoint (median) | first frame | T(15) | C(15) | kNN(15) "
        "| NN-15 count (self incl.) | PPR | temporal ranking | mean displacement |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in results["runs"].items():
        size = f"{name} ({run['n_points']:,} × {run['n_features']}, {run['n_checkpoints']} ckpts)"
        for method, m in run["methods"].items():
            lines.append(
                f"| {size} | {LABELS[method]} | {m['median_s']:.2f} s | {m['first_frame_s']:.2f} s "
                f"| {_num(m['trustworthiness'])} | {_num(m['continuity'])} "
                f"| {_num(m['knn_preservation'])} | {_num(m['knn_count_self'], 2)} "
                f"| {_num(m['ppr'], none='– (no inverse)')} | {_num(m['temporal_ranking'])} "
                f"| {_num(m['displacement_mean'])} |"
            )
    lines += ["", "| target (issue 4) | run | SentryCam | baseline | measured | met? |"]
    lines.append("|---|---|---|---|---|---|")
    for t in results["targets"]:
        lines.append(
            f"| {t['target']} | {t['run']} | {_num(t['sentrycam'])} | {_num(t['baseline'])} "
            f"| {_num(t['value'])} | {'met' if t['met'] else '**not met**'} |"
        )
    return "\n".join([*lines, "", _footnote(results)]) + "\n"


def _num(value: float | None, digits: int = 3, none: str = "–") -> str:
    return none if value is None else f"{value:.{digits}f}"


def _footnote(results: dict[str, Any]) -> str:
    machine, settings, warm = results["machine"], results["settings"], results["warm_up_s"]
    load = ", ".join(f"{v:.1f}" for v in machine["load_average_before"])
    load_after = ", ".join(f"{v:.1f}" for v in machine["load_average_after"])
    compile_parts = ", ".join(
        f"{k.removesuffix('_s').replace('_', ' ')} {v:.1f} s" for k, v in warm.items()
    )
    options = {m: o for m, o in settings["method_options"].items() if o}
    return (
        f"Measured at commit {machine['commit']}, in one process on {machine['cpus']} CPU cores "
        f"(torch {machine['torch']}, {machine['torch_threads']} thread(s); umap-learn {machine['umap_learn']}: "
        f"unseeded on all cores, or seeded and single-threaded), load average {load} at the start and {load_after} at the end; "
        f"{results['total_s'] / 60:.1f} min in all. Each run records one checkpoint per epoch "
        f"({settings['epochs']} epochs; bounded so UMAP's fits on 10,000 points keep the "
        "benchmark to minutes) and every method projects every checkpoint through "
        "`pipeline.project_run` with default settings"
        f"{f' except {options}' if options else ''}. s/checkpoint = median projector wall time "
        "over the checkpoints after the first; first frame = the first checkpoint's (cold "
        "SentryCam/DVI network, spectral UMAP init). umap-learn's import and numba compilation "
        f"are paid before any timing by an untimed warm-up on tiny data ({compile_parts}; "
        "numba's on-disk cache warm). T/C = trustworthiness/continuity, kNN = fraction of the "
        "15 exact high-dimensional neighbours kept in 2-D (self excluded), NN-15 count = the "
        "papers' variant (self included, out of 15), all on the same ≤ 2,000-point subsample "
        "and averaged over checkpoints; PPR = predictions kept through the 2-D round trip "
        "(needs an inverse: UMAP has none, so no background either); temporal ranking and "
        "displacement from `metrics.temporal_metrics` over all checkpoints. Wall-clock times "
        "grow with the load average."
    )


# ------------------------------------------------------------------------------- figure


@dataclass(frozen=True)
class _Panel:
    """One frame to draw: which run and method, and the labels/predictions to colour it by."""

    run: str
    method: str
    frame: Any
    labels: np.ndarray
    predictions: np.ndarray | None


def _panels(name: str, store: Any, method: str, frames: list) -> list[_Panel]:
    """The method's frames at an early, middle and late checkpoint of the run."""
    picked = spread_indices(len(frames), 3)
    return [
        _Panel(name, method, frames[i], store.labels, store.checkpoint(frames[i].index).predictions)
        for i in picked
    ]


def write_figure(panels: list[_Panel], path: Path) -> Path:
    """A PNG grid: one row per method, one column per (run, early/middle/late checkpoint).

    Backgrounds use the widget's palette and colouring (``render.draw_frame``); methods without
    an inverse say so in the panel instead of showing a background.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from ..projection import make_projector
    from ..render import draw_frame, frame_title, palette

    columns = list(dict.fromkeys((p.run, p.frame.index) for p in panels))
    rows = list(dict.fromkeys(p.method for p in panels))
    n_classes = 1 + max(int(p.labels.max()) for p in panels)
    colours = palette(n_classes)
    fig = Figure(figsize=(2.6 * len(columns), 2.7 * len(rows)), dpi=100, layout="constrained")
    for panel in panels:
        row, column = rows.index(panel.method), columns.index((panel.run, panel.frame.index))
        ax = fig.add_subplot(len(rows), len(columns), row * len(columns) + column + 1)
        size = 3.0 if len(panel.labels) < 5000 else 0.6
        draw_frame(ax, panel.frame, panel.labels, panel.predictions, colours, point_size=size)
        ax.set_title(f"{panel.run} · {frame_title(panel.frame)}", fontsize=7)
        if column == 0:
            ax.set_ylabel(LABELS[panel.method], fontsize=9)
        if not make_projector(panel.method).has_inverse:
            _say_no_background(ax)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path


def _say_no_background(ax: Any) -> None:
    ax.set_facecolor("#eeeeee")
    ax.text(
        0.5,
        0.03,
        "no background: no inverse",
        transform=ax.transAxes,
        ha="center",
        va="bottom",
        fontsize=7,
        color="#444444",
        bbox={"facecolor": "white", "edgecolor": "#999999", "boxstyle": "round,pad=0.2"},
    )


# ------------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None, results: Path = RESULTS) -> int:
    """Run the comparison and write compare.{json,md,png} to ``--out`` (default ``results``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small runs and budgets (tests)")
    parser.add_argument(
        "--epochs", type=int, default=None, help="checkpoints per run (6; --quick: 3)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1)")
    parser.add_argument("--out", type=Path, default=results, help="results directory")
    args = parser.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (3 if args.quick else 6)
    if epochs < 3 or args.threads < 1:
        parser.error("--epochs must be >= 3 (temporal ranking needs 3 checkpoints), --threads >= 1")
    settings = Settings(epochs=epochs, quick=args.quick, seed=args.seed, threads=args.threads)
    results = run_comparison(settings, args.out)
    print(markdown(results))
    return 0


def run_comparison(settings: Settings, out: Path) -> dict[str, Any]:
    """Measure (on ``settings.threads`` torch threads, restored afterwards) and write the files."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        with tempfile.TemporaryDirectory(prefix="sentrycam-compare-") as work:
            results, panels = compare(Path(work), settings)
            out.mkdir(parents=True, exist_ok=True)
            write_figure(panels, out / "compare.png")
    finally:
        torch.set_num_threads(threads)
    (out / "compare.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "compare.md").write_text(markdown(results))
    return results


if __name__ == "__main__":
    raise SystemExit(main())
