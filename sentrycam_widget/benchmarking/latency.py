"""SentryCam vs umap-learn: per-checkpoint latency, faithfulness and time to first frame.

Run ``python benchmarks/latency.py`` (``--help`` for sizes). On two recorded runs, in one
process:

* ``digits``: the demo's CNN on scikit-learn's digits (N = 1,797, D = 64);
* ``mlp10k``: a real MLP trained on ``make_classification`` data (N = 10,000, D = 256);

it measures SentryCam's per-checkpoint latency (every checkpoint, warm-started, median of the
checkpoints after the first) against umap-learn's ``UMAP(n_neighbors=15, min_dist=0.1)``
warm-started from the previous frame (``init=`` it, then aligned) on the same checkpoints, in two
settings: unseeded on all cores (``umap-unseeded``, umap-learn's fastest honest setting: the
ratio is taken against it) and seeded (``umap``, single-threaded, reproducible);
trustworthiness(15) of all three on the same checkpoints, and, in FRESH
processes, the time to first frame split into interpreter+package import, umap import, and
numba compilation (first minus repeated projection of the same checkpoint), with the on-disk
numba cache warm (the normal case after ``python -m sentrycam_widget warmup``) and cold (an
empty ``NUMBA_CACHE_DIR``). Compilation is warmed up in-process before the per-checkpoint
timings, so those exclude it.

Writes ``benchmarks/results/latency.json`` and ``latency.md`` (a Markdown table for the
README). Wall-clock numbers depend on what else the machine runs; the JSON records the load
average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ._environment import RESULTS, version

UMAP_OPTIONS = {"n_neighbors": 15, "min_dist": 0.1}
# a seeded umap-learn fit warns that it runs single-threaded; that is the setting we measure
warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)


# ------------------------------------------------------------------------------- recording


def record_runs(work_dir: Path, digits_epochs: int, mlp_epochs: int, seed: int) -> dict[str, Path]:
    """Record the two benchmark runs (checkpoints only) under ``work_dir``."""
    from ..demo import make_mlp_run, record_digits_run

    return {
        "digits": record_digits_run(work_dir / "digits", epochs=digits_epochs, seed=seed),
        "mlp10k": make_mlp_run(work_dir / "mlp10k", epochs=mlp_epochs, seed=seed),
    }


# ------------------------------------------------------------------------------- in-process


def warm_up_compilation(seed: int) -> None:
    """Compile (or load from the numba cache) everything both methods need, untimed."""
    from ..warmup import warmup

    warmup(pynndescent=True, seed=seed)


def sentrycam_latency(run_dir: Path, seed: int, threads: int) -> dict[str, Any]:
    """Project every checkpoint with SentryCam (resumable pipeline); latency and metrics."""
    from ..pipeline import project_run
    from ..store import RunStore

    store = RunStore.open(run_dir)
    project_run(store, "sentrycam", threads=threads, seed=seed)
    frames = store.frames("sentrycam")
    latencies = [f.timings["total"] for f in frames]
    return {
        "per_checkpoint_s": latencies,
        "first_checkpoint_s": latencies[0],
        "median_s": statistics.median(latencies),
        "median_after_first_s": statistics.median(latencies[1:]) if len(latencies) > 1 else None,
        "trustworthiness": {f.index: f.metrics["trustworthiness"] for f in frames},
        "ppr": {f.index: f.metrics.get("ppr") for f in frames},
    }


def umap_latency(run_dir: Path, method: str, seed: int) -> dict[str, Any]:
    """Project every checkpoint with the warm-started UMAP ``method`` (``umap-unseeded`` or
    ``umap``); latency and trustworthiness(15) of each."""
    from ..pipeline import project_run
    from ..store import RunStore

    store = RunStore.open(run_dir)
    frames = project_run(store, method, seed=seed)
    latencies = [f.timings["total"] for f in frames]
    return {
        "checkpoints": [f.index for f in frames],
        "per_checkpoint_s": latencies,
        "median_s": statistics.median(latencies[1:] if len(latencies) > 1 else latencies),
        "trustworthiness": {f.index: f.metrics["trustworthiness"] for f in frames},
    }


def spread_indices(n: int, count: int) -> list[int]:
    """Up to ``count`` checkpoint indices spread over ``0..n-1`` (first, ..., last)."""
    count = min(count, n)
    return sorted({round(i * (n - 1) / max(count - 1, 1)) for i in range(count)})


# ------------------------------------------------------------------------------- fresh process


def first_frame(
    run_dir: Path, method: str, seed: int, threads: int, numba_cache: Path | None
) -> dict[str, Any]:
    """Launch a fresh interpreter that imports everything and projects checkpoint 0.

    ``wall_s`` runs from the launch to the first frame being ready; the child reports its
    parts. ``numba_cache`` set: numba compiles into that (empty) directory, i.e. a cold cache.
    """
    env = dict(os.environ)
    if numba_cache is not None:
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
    command = [sys.executable, "-m", __name__, "--child-first-frame"]
    command += [str(run_dir), "--method", method, "--seed", str(seed), "--threads", str(threads)]
    launched = time.time()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"first-frame child failed:\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["wall_s"] = report.pop("frame_ready_at") - launched
    report["cold_numba_cache"] = numba_cache is not None
    return report


def _child_first_frame(run_dir: Path, method: str, seed: int, threads: int) -> None:
    start = time.perf_counter()
    import torch

    from ..projection import make_projector
    from ..store import RunStore

    torch.set_num_threads(threads)
    checkpoint = RunStore.open(run_dir).checkpoint(0)
    imported = time.perf_counter()
    if method == "umap":
        import umap  # noqa: F401  (SentryCam does not need umap-learn below 30,000 points)

    umap_imported = time.perf_counter()
    project = _child_projection(method, seed, make_projector)
    project(checkpoint)
    frame_ready_at = time.time()
    first_done = time.perf_counter()
    project(checkpoint)
    repeat_done = time.perf_counter()
    first_s, repeat_s = first_done - umap_imported, repeat_done - first_done
    report = {
        "method": method,
        "package_import_and_load_s": imported - start,
        "umap_import_s": umap_imported - imported,
        "first_projection_s": first_s,
        "repeat_projection_s": repeat_s,
        "compilation_s": max(first_s - repeat_s, 0.0),
        "frame_ready_at": frame_ready_at,
    }
    print(json.dumps(report))


def _child_projection(method: str, seed: int, make_projector: Any) -> Any:
    if method == "umap":
        from umap import UMAP

        return lambda c: UMAP(**UMAP_OPTIONS, n_jobs=-1).fit_transform(c.features)  # unseeded
    return lambda c: make_projector(method, seed=seed).update(c)


# ------------------------------------------------------------------------------- report


def benchmark(
    work_dir: Path,
    digits_epochs: int = 8,
    mlp_epochs: int = 6,
    cold_cache: bool = True,
    seed: int = 0,
    threads: int = 1,
    progress: Any = print,
) -> dict[str, Any]:
    """Everything above on both runs, torch limited to ``threads`` (the live monitor's default
    is 1; seeded umap-learn is single-threaded); returns the JSON-ready results."""
    import torch

    torch.set_num_threads(threads)
    load_before = os.getloadavg()
    started = time.perf_counter()
    runs = record_runs(work_dir, digits_epochs, mlp_epochs, seed)
    progress(f"recorded runs in {time.perf_counter() - started:.0f} s")
    warm_up_compilation(seed)
    results: dict[str, Any] = {}
    for name, run_dir in runs.items():
        results[name] = _benchmark_run(name, run_dir, cold_cache, seed, threads, progress)
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": threads,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "umap_learn": version("umap-learn"),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "settings": {
            "digits_epochs": digits_epochs,
            "mlp_epochs": mlp_epochs,
            "umap_options": UMAP_OPTIONS,
            "seed": seed,
        },
        "runs": results,
        "total_s": time.perf_counter() - started,
    }


def _benchmark_run(
    name: str,
    run_dir: Path,
    cold_cache: bool,
    seed: int,
    threads: int,
    progress: Any,
) -> dict[str, Any]:
    from ..store import RunStore

    store = RunStore.open(run_dir)
    n_checkpoints = len(store.checkpoint_indices())
    sentrycam = sentrycam_latency(run_dir, seed, threads)
    progress(f"{name}: SentryCam median {sentrycam['median_s']:.2f} s per checkpoint")
    umap = umap_latency(run_dir, "umap-unseeded", seed)
    seeded = umap_latency(run_dir, "umap", seed)
    progress(
        f"{name}: UMAP warm-started median {umap['median_s']:.2f} s per checkpoint unseeded, "
        f"{seeded['median_s']:.2f} s seeded"
    )
    same = umap["checkpoints"]
    t_sentrycam = [sentrycam["trustworthiness"][i] for i in same]
    t_umap = [umap["trustworthiness"][i] for i in same]
    first = {
        method: first_frame(run_dir, method, seed, threads, None)
        for method in ("sentrycam", "umap")
    }
    if cold_cache:
        with tempfile.TemporaryDirectory(prefix="numba-cold-") as cache:
            first["sentrycam_cold_cache"] = first_frame(
                run_dir, "sentrycam", seed, threads, Path(cache)
            )
    progress(f"{name}: first frame {first['sentrycam']['wall_s']:.1f} s (fresh process)")
    return {
        "n_points": store.n_points,
        "n_features": store.n_features,
        "n_checkpoints": n_checkpoints,
        "sentrycam": sentrycam,
        "umap": umap,
        "umap_seeded": seeded,
        "latency_ratio": sentrycam["median_after_first_s"] / umap["median_s"],
        "trustworthiness_same_checkpoints": {
            "checkpoints": same,
            "sentrycam_mean": float(np.mean(t_sentrycam)),
            "umap_mean": float(np.mean(t_umap)),
            "difference": float(np.mean(t_sentrycam) - np.mean(t_umap)),
        },
        "first_frame": first,
    }


def markdown(results: dict[str, Any]) -> str:
    """The README table: one row per run, then first-frame details."""
    lines = [
        "| run | N × D | SentryCam s/checkpoint (median) | UMAP warm unseeded s/checkpoint "
        "| UMAP warm seeded s/checkpoint | ratio (vs unseeded) "
        "| T(15) SentryCam | T(15) UMAP unseeded | PPR SentryCam | first frame, fresh process "
        "(SentryCam / UMAP) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in results["runs"].items():
        t = run["trustworthiness_same_checkpoints"]
        first = run["first_frame"]
        lines.append(
            f"| {name} | {run['n_points']:,} × {run['n_features']} "
            f"| {run['sentrycam']['median_after_first_s']:.2f} | {run['umap']['median_s']:.2f} "
            f"| {run['umap_seeded']['median_s']:.2f} "
            f"| {run['latency_ratio']:.2f} | {t['sentrycam_mean']:.3f} | {t['umap_mean']:.3f} "
            f"| {_mean_ppr(run['sentrycam']['ppr'], t['checkpoints'])} "
            f"| {first['sentrycam']['wall_s']:.1f} s / {first['umap']['wall_s']:.1f} s |"
        )
    lines += ["", _first_frame_details(results), "", _footnote(results)]
    return "\n".join(lines) + "\n"


def _mean_ppr(ppr: dict[Any, float | None], checkpoints: list[int]) -> str:
    values = [ppr.get(i, ppr.get(str(i))) for i in checkpoints]
    values = [v for v in values if v is not None]
    return f"{np.mean(values):.3f}" if values else "–"


def _first_frame_details(results: dict[str, Any]) -> str:
    lines = [
        "| run | method | numba cache | wall (launch → frame) | imports + load | umap import "
        "| first projection | of which compilation |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, run in results["runs"].items():
        for report in run["first_frame"].values():
            lines.append(
                f"| {name} | {report['method']} | {'cold' if report['cold_numba_cache'] else 'warm'} "
                f"| {report['wall_s']:.1f} s | {report['package_import_and_load_s']:.1f} s "
                f"| {report['umap_import_s']:.1f} s | {report['first_projection_s']:.1f} s "
                f"| {report['compilation_s']:.1f} s |"
            )
    return "\n".join(lines)


def _footnote(results: dict[str, Any]) -> str:
    machine, settings = results["machine"], results["settings"]
    load = ", ".join(f"{v:.1f}" for v in machine["load_average_before"])
    return (
        f"Measured on {machine['cpus']} CPU cores (torch {machine['torch']}, "
        f"intra-op threads: {machine['torch_threads']}; umap-learn {machine['umap_learn']}), load average "
        f"{load} at the start. SentryCam: every checkpoint ({settings['digits_epochs']} digits, "
        f"{settings['mlp_epochs']} MLP), warm-started; UMAP `UMAP(n_neighbors=15, min_dist=0.1)` "
        "on the same checkpoints, each fit started from the previous frame, unseeded on all "
        f"cores and seeded (`random_state={settings['seed']}` + index, single-threaded); medians "
        "over the checkpoints after the first; T(15) averaged over all checkpoints; "
        "ratio = SentryCam / unseeded UMAP median latency. Compilation = first minus repeated projection "
        "of checkpoint 0 in the fresh process. Wall-clock times grow with the load average."
    )


def main(argv: list[str] | None = None, results: Path = RESULTS) -> int:
    """Measure latency and first-frame time; write latency.{json,md} to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits-epochs", type=int, default=8)
    parser.add_argument("--mlp-epochs", type=int, default=6)
    parser.add_argument("--no-cold-cache", action="store_true", help="skip the cold-cache run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1)")
    parser.add_argument("--out", type=Path, default=results, help="results directory")
    parser.add_argument("--child-first-frame", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--method", default="sentrycam", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_first_frame is not None:
        _child_first_frame(args.child_first_frame, args.method, args.seed, args.threads)
        return 0
    with tempfile.TemporaryDirectory(prefix="sentrycam-bench-") as work:
        results = benchmark(
            Path(work),
            args.digits_epochs,
            args.mlp_epochs,
            not args.no_cold_cache,
            args.seed,
            args.threads,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "latency.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
