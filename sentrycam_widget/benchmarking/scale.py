"""The engine at scale: SentryCam against umap-learn's fastest honest setting on the same checkpoints.

For one recorded run (``benchmarks/workloads.py`` records MNIST-1D at 10,000 × 128 and an MLP at
50,000 × 512), in one process and side by side, every checkpoint is projected by

* ``sentrycam`` (the default engine) and, optionally, ``sentrycam-spec`` (SPEC §2 as written);
* ``umap-unseeded``: umap-learn warm-started from the previous frame, unseeded, on all cores;
* ``umap``: the same warm start, seeded (single-threaded, reproducible);

after an untimed warm-up that compiles (or loads from numba's cache) what every method needs, so
no method's times include compilation (the first-frame figure below does);
each frame scored by ``metrics.frame_metrics`` (T(15) on the fixed ≤ 2,000-point subsample, PPR on
all points) and each method's run by ``metrics.temporal_metrics``. Reported: per-warm-checkpoint
time ratio against ``umap-unseeded`` (median), T(15) difference on the same checkpoints, PPR,
temporal ranking, then — in fresh processes — the first SentryCam frame (launch to frame) and the
peak RSS of ``python -m sentrycam_widget project`` on the run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SENTRYCAM_METHODS = ("sentrycam", "sentrycam-spec")
UMAP_METHODS = ("umap-unseeded", "umap")


def project_all(run_dir: Path, method: str, seed: int) -> dict[str, Any]:
    """Project every checkpoint of ``run_dir`` with ``method``; seconds and metrics per frame."""
    from ..metrics import frame_metrics, temporal_metrics
    from ..projection import make_projector
    from ..store import RunStore

    store = RunStore.open(run_dir)
    projector = make_projector(method, seed=seed)
    seconds, trust, ppr, features, embeddings = [], [], [], [], []
    for index in store.checkpoint_indices():
        checkpoint = store.checkpoint(index)
        start = time.perf_counter()
        frame = projector.update(checkpoint)
        seconds.append(time.perf_counter() - start)
        scores = frame_metrics(checkpoint, frame)
        trust.append(scores["trustworthiness"])
        ppr.append(scores.get("ppr"))
        features.append(checkpoint.features)
        embeddings.append(frame.embedding)
    temporal = temporal_metrics(features, embeddings)
    return {
        "seconds": seconds,
        "trustworthiness": trust,
        "ppr": ppr,
        "temporal_ranking": temporal["temporal_ranking"],
        "displacement_mean": temporal["displacement_mean"],
    }


def fresh_process(run_dir: Path, seed: int) -> dict[str, float]:
    """First SentryCam frame and peak RSS of ``project`` on the run, each in a fresh process."""
    import tempfile

    code = (
        "import time, json, sys; t0 = time.perf_counter()\n"
        "from sentrycam_widget.projection import make_projector\n"
        "from sentrycam_widget.store import RunStore\n"
        f"c = RunStore.open({str(run_dir)!r}).checkpoint(0)\n"
        f"make_projector('sentrycam', seed={seed}).update(c)\n"
        "print(json.dumps({'first_frame_s': time.perf_counter() - t0}))\n"
    )
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if first.returncode != 0:
        raise RuntimeError(f"first-frame child failed:\n{first.stderr[-2000:]}")
    with tempfile.TemporaryDirectory(prefix="scale-rss-") as work:
        copy = Path(work) / "run"
        subprocess.run(["cp", "-r", str(run_dir), str(copy)], check=True)
        for frames in (copy / "frames").glob("*"):
            subprocess.run(["rm", "-rf", str(frames)], check=True)
        script = (
            "import resource, subprocess, sys, json\n"
            "r = subprocess.run([sys.executable, '-m', 'sentrycam_widget', 'project', sys.argv[1],"
            " '--method', 'sentrycam'], capture_output=True)\n"
            "assert r.returncode == 0, r.stderr.decode()[-2000:]\n"
            "print(json.dumps({'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
        )
        peak = subprocess.run(
            [sys.executable, "-c", script, str(copy)], capture_output=True, text=True
        )
        if peak.returncode != 0:
            raise RuntimeError(f"project child failed:\n{peak.stderr[-2000:]}")
    return {
        "first_frame_s": json.loads(first.stdout.strip().splitlines()[-1])["first_frame_s"],
        "project_peak_rss_mib": json.loads(peak.stdout.strip().splitlines()[-1])["rss"] / 1024,
    }


def compare_scale(
    run_dir: Path, seed: int = 0, spec: bool = True, fresh: bool = True
) -> dict[str, Any]:
    """Every method on every checkpoint of ``run_dir``, then the summary against UMAP."""
    from ..projection.graph import warm_up
    from ..store import RunStore
    from .latency import warm_up_compilation

    store = RunStore.open(run_dir)
    methods = [m for m in SENTRYCAM_METHODS if spec or m == "sentrycam"] + list(UMAP_METHODS)
    clock = time.perf_counter()
    warm_up_compilation(seed)  # untimed, so neither side pays numba's compilation in its times
    warm_up(store.n_points)  # pynndescent's warm-started path too, as the monitor's worker does
    print(f"compilation warm-up: {time.perf_counter() - clock:.1f} s (untimed)", flush=True)
    per_method = {}
    for method in methods:
        per_method[method] = project_all(run_dir, method, seed)
        print(f"{method}: {_line(per_method[method])}", flush=True)
    out: dict[str, Any] = {
        "run": str(run_dir.name),
        "n_points": store.n_points,
        "n_features": store.n_features,
        "n_checkpoints": len(store.checkpoint_indices()),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "methods": per_method,
        "summary": {m: _summary(per_method[m], per_method["umap-unseeded"]) for m in methods},
    }
    if fresh:
        out["fresh_process"] = fresh_process(run_dir, seed)
    return out


def _summary(ours: dict[str, Any], umap: dict[str, Any]) -> dict[str, float | None]:
    warm = slice(1, None)  # the first checkpoint is a cold start for every method
    ratios = [a / b for a, b in zip(ours["seconds"][warm], umap["seconds"][warm], strict=True)]
    ppr = [p for p in ours["ppr"] if p is not None]
    return {
        "median_warm_s": statistics.median(ours["seconds"][warm]),
        "first_s": ours["seconds"][0],
        "median_warm_ratio_vs_umap_unseeded": statistics.median(ratios),
        "trustworthiness": float(np.mean(ours["trustworthiness"])),
        "trustworthiness_minus_umap_unseeded": float(
            np.mean(ours["trustworthiness"]) - np.mean(umap["trustworthiness"])
        ),
        "ppr": float(np.mean(ppr)) if ppr else None,
        "temporal_ranking": ours["temporal_ranking"],
    }


def _line(result: dict[str, Any]) -> str:
    ppr = [p for p in result["ppr"] if p is not None]
    return (
        f"s {' '.join(f'{s:.2f}' for s in result['seconds'])} "
        f"T {np.mean(result['trustworthiness']):.4f} "
        f"PPR {np.mean(ppr) if ppr else float('nan'):.4f} "
        f"ranking {result['temporal_ranking']:.4f}"
    )


def markdown(results: list[dict[str, Any]], commit: str) -> str:
    """One row per run and method: times, ratio to umap-unseeded, T(15), PPR, temporal ranking."""
    lines = [
        "| run | method | s per warm checkpoint (median) | ratio to UMAP unseeded (median) "
        "| first checkpoint | T(15) | T − UMAP unseeded | PPR | temporal ranking |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results:
        name = f"{run['run']} ({run['n_points']:,} × {run['n_features']})"
        for method, s in run["summary"].items():
            ppr = "–" if s["ppr"] is None else f"{s['ppr']:.3f}"
            lines.append(
                f"| {name} | {method} | {s['median_warm_s']:.2f} s "
                f"| {s['median_warm_ratio_vs_umap_unseeded']:.2f} | {s['first_s']:.2f} s "
                f"| {s['trustworthiness']:.3f} | {s['trustworthiness_minus_umap_unseeded']:+.3f} "
                f"| {ppr} | {s['temporal_ranking']:.3f} |"
            )
    fresh = [
        f"{r['run']}: first SentryCam frame in a fresh process "
        f"{r['fresh_process']['first_frame_s']:.1f} s, peak RSS of `project` "
        f"{r['fresh_process']['project_peak_rss_mib']:.0f} MiB"
        for r in results
        if "fresh_process" in r
    ]
    loads = ", ".join(f"{r['run']} {r['load_average'][0]:.1f}" for r in results)
    return "\n".join(
        [
            *lines,
            "",
            *fresh,
            "",
            f"Measured at commit {commit} on {results[0]['cpus']} CPU cores shared with other "
            f"jobs (1-minute load average at the end: {loads}); all methods of a run in one "
            "process, one after another, on the same checkpoints.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Run the scale comparison on recorded runs; write scale.json and scale.md to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="recorded run directories")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-spec", action="store_true", help="skip sentrycam-spec")
    parser.add_argument("--no-fresh", action="store_true", help="skip the fresh-process runs")
    parser.add_argument("--commit", default="unknown")
    args = parser.parse_args(argv)
    results = [compare_scale(r, args.seed, not args.no_spec, not args.no_fresh) for r in args.runs]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "scale.md").write_text(markdown(results, args.commit) + "\n")
    print(markdown(results, args.commit))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
