"""Peak memory of the commands and views of a long run, measured, then extrapolated.

Builds a synthetic run (``--checkpoints`` T × ``--points`` N × ``--dim`` D float32 features of
ten Gaussian classes that separate as "training" goes on, a linear head per checkpoint), plus
two smaller runs sharing its data (T/2 × N and T × N/2), and measures in a fresh process each:

- ``project`` (every frame, from scratch), ``audit``, ``evaluate``, ``export --html``: the CLI,
  ``python -m sentrycam_widget ...``;
- ``kernel widget``: ``Monitor.open(run)`` (the kernel-side widget of the whole run), peak RSS
  and the RSS it keeps once built;
- ``baseline``: the interpreter with sentrycam_widget and torch imported.

Peak RSS comes from ``os.wait4`` on each child (the kernel's high-water mark of that process).
From the three sizes it fits ``peak = base + N (a + b T)`` per command and extrapolates to
``--target`` (default 200 × 50,000). The browser heap of the same run is measured by
``benchmarks/widget_memory.py`` (Chromium, CDP) where present.

    python benchmarks/memory.py                      # 60 × 20,000 × 256, about 15 minutes
    python benchmarks/memory.py --quick              # 8 × 2,000 × 32, a smoke run

Results: ``benchmarks/results/memory.{json,md}`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sentrycam_widget.records import Checkpoint, LinearHead
from sentrycam_widget.store import RunStore

REPO = Path(__file__).resolve().parents[1]

CLASSES = 10
COMMANDS = ("project", "audit", "evaluate", "export --html", "kernel widget")
TARGETS_MB = {"audit": 700, "evaluate": 700}

_WIDGET = """
import os, sys
from sentrycam_widget.monitor import Monitor
viewer = Monitor.open(sys.argv[1])
kept = int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
print('KEPT', kept, len(viewer.widget.frames))
"""
_BASELINE = "import torch, sentrycam_widget.monitor, sentrycam_widget.cli"


def build_run(root: Path, checkpoints: int, points: int, dim: int, seed: int = 0) -> Path:
    """A synthetic run: class means drift apart over the checkpoints, one head per checkpoint."""
    rng = np.random.default_rng(seed)
    labels = np.arange(points) % CLASSES
    rng.shuffle(labels)
    directions = rng.normal(size=(CLASSES, dim)).astype(np.float32)
    noise_basis = rng.normal(size=(points, 32)).astype(np.float32)
    mixing = rng.normal(size=(32, dim)).astype(np.float32) / np.sqrt(32)
    store = RunStore.create(root, labels, n_features=dim, n_classes=CLASSES)
    for t in range(checkpoints):
        progress = (t + 1) / checkpoints
        drift = rng.normal(scale=0.05, size=noise_basis.shape).astype(np.float32)
        noise_basis += drift
        features = noise_basis @ mixing + 3.0 * progress * directions[labels]
        features = np.maximum(features, 0.0).astype(np.float32)  # a ReLU layer
        weight = (directions * progress).astype(np.float32)
        bias = np.zeros(CLASSES, np.float32)
        store.append_checkpoint(
            Checkpoint(
                index=t,
                epoch=t,
                features=features,
                labels=labels,
                head=LinearHead(weight, bias),
                scalars={"val_loss": float(2.0 / (1 + t) + 0.01 * t)},
            )
        )
    return root


def derive_run(
    source: Path, root: Path, checkpoints: int, points: int, frames_from: Path | None = None
) -> Path:
    """The first ``checkpoints`` checkpoints of ``source``, restricted to its first ``points``;
    with ``frames_from`` (same N) its frames are linked in too."""
    original = RunStore.open(source)
    labels = original.labels[:points]
    store = RunStore.create(
        root, labels, n_features=original.n_features, n_classes=original.n_classes
    )
    for index in original.checkpoint_indices()[:checkpoints]:
        c = original.checkpoint(index)
        store.append_checkpoint(
            Checkpoint(
                index=c.index,
                epoch=c.epoch,
                features=c.features[:points],
                labels=labels,
                head=c.head,
                scalars=c.scalars,
            )
        )
    if frames_from is not None:
        stored = RunStore.open(frames_from)
        for method in stored.methods():
            target = root / "frames" / method
            target.mkdir(parents=True, exist_ok=True)
            for index in stored.frame_indices(method)[:checkpoints]:
                name = f"{index:06d}.npz"
                os.link(frames_from / "frames" / method / name, target / name)
    return root


def _earlier_runs(
    path: Path, sizes: dict[str, tuple[int, int]], dim: int
) -> dict[str, dict[str, Any]]:
    """The measurements of an earlier report of the same sizes (kept for commands not rerun)."""
    if not path.exists():
        return {}
    earlier = json.loads(path.read_text())
    same = all(
        earlier["sizes"].get(k) == {"checkpoints": v[0], "points": v[1], "dim": dim}
        for k, v in sizes.items()
    )
    return earlier["runs"] if same else {}


def peak_rss(argv: list[str], env: dict[str, str]) -> tuple[int, float, str]:
    """Run ``argv``; its peak RSS in bytes (wait4's ru_maxrss), wall seconds, stdout."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE, env=env, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr = process.stderr.read().decode() if process.stderr else ""
        out.seek(0)
        stdout = out.read().decode()
    if process.returncode != 0:
        raise RuntimeError(f"{argv} failed ({process.returncode}):\n{stderr[-3000:]}")
    return usage.ru_maxrss * 1024, wall, stdout


def measure_run(
    run: Path, html_dir: Path, env: dict[str, str], commands: list[str]
) -> dict[str, dict[str, Any]]:
    """Peak RSS (MB) and wall time of ``commands`` on ``run`` (project first: it makes frames)."""
    python = [sys.executable]
    cli = [*python, "-m", "sentrycam_widget"]
    argvs = {
        "project": [*cli, "project", str(run)],
        "audit": [*cli, "audit", str(run), "--json"],
        "evaluate": [*cli, "evaluate", str(run), "--json"],
        "export --html": [*cli, "export", str(run), "--html", str(html_dir / f"{run.name}.html")],
        "kernel widget": [*python, "-c", _WIDGET, str(run)],
    }
    results: dict[str, dict[str, Any]] = {}
    if "project" not in commands and RunStore.open(run).missing_frames("sentrycam"):
        peak_rss(argvs["project"], env)  # frames for the other commands, not measured
    for name in commands:
        peak, wall, stdout = peak_rss(argvs[name], env)
        row: dict[str, Any] = {"peak_mb": peak / 2**20, "wall_s": wall, "commit": _commit()}
        if name == "kernel widget":
            kept = stdout.split("KEPT")[-1].split()
            row["kept_mb"] = int(kept[0]) / 2**20
            row["frames"] = int(kept[1])
        if name == "export --html":
            row["html_mb"] = (html_dir / f"{run.name}.html").stat().st_size / 2**20
        results[name] = row
        print(
            f"  {run.name:>14} {name:<14} peak {row['peak_mb']:8.1f} MB  {wall:7.1f} s", flush=True
        )
    return results


def extrapolate(
    sizes: dict[str, tuple[int, int]],
    runs: dict[str, dict[str, dict[str, Any]]],
    target: tuple[int, int],
) -> dict[str, dict[str, float]]:
    """Fit ``peak = base + N (a + b T)`` through the runs measured; evaluate at ``target``.

    ``project`` is measured on the full and the half-N run only (the half-T run links the
    full run's frames): its fit is ``base + a N`` (a projector holds one checkpoint at a time).
    ``evaluate`` holds one checkpoint at a time plus a fixed subsample of at most 2,000 points of
    each (its temporal metrics work on a block of samples at a time), so its fit is
    ``base + a N + b T``.
    """
    out = {}
    t, n = target
    for name in COMMANDS:
        measured = [k for k in ("full", "half_t", "half_n") if name in runs.get(k, {})]
        if not {"full", "half_n"} <= set(measured):
            continue
        rows = np.array([[1.0, sizes[k][1], sizes[k][1] * sizes[k][0]] for k in measured])
        peaks = np.array([runs[k][name]["peak_mb"] for k in measured])
        if name == "evaluate":
            rows[:, 2] = [sizes[k][0] for k in measured]  # base + a N + b T
            base, a, b = np.linalg.solve(rows, peaks)
            out[name] = {
                "base_mb": float(base),
                "mb_per_point": float(a),
                "mb_per_checkpoint": float(b),
                "predicted_mb": float(base + a * n + b * t),
            }
            continue
        if len(measured) == 3:
            base, a, b = np.linalg.solve(rows, peaks)
        else:
            (base, a), b = np.linalg.solve(rows[:, :2], peaks), 0.0
        out[name] = {
            "base_mb": float(base),
            "mb_per_point": float(a),
            "mb_per_point_checkpoint": float(b),
            "predicted_mb": float(base + n * (a + b * t)),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", type=int, default=60)
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--target", type=int, nargs=2, default=(200, 50_000), metavar=("T", "N"))
    parser.add_argument("--quick", action="store_true", help="8 × 2,000 × 32 (smoke run)")
    parser.add_argument(
        "--work", type=Path, default=None, help="where to build the runs (kept; reused if there)"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: rewrite the report (fits, markdown) from the earlier --out report",
    )
    parser.add_argument(
        "--commands",
        nargs="+",
        default=list(COMMANDS),
        choices=COMMANDS,
        help="measure only these (the others keep their figures from an earlier --out report)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.checkpoints, args.points, args.dim = 8, 2_000, 32
    work = Path(args.work or tempfile.mkdtemp(prefix="sentrycam-memory-"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    t, n = args.checkpoints, args.points
    sizes = {"full": (t, n), "half_t": (t // 2, n), "half_n": (t, n // 2)}
    stem = "memory_quick" if args.quick else "memory"
    runs = _earlier_runs(args.out / f"{stem}.json", sizes, args.dim)
    if args.report_only:
        args.commands = []
    full = work / "full"
    if not (full / "manifest.json").exists():
        print(f"building {t} × {n} × {args.dim} in {work}", flush=True)
        build_run(full, t, n, args.dim)
        derive_run(full, work / "half_n", t, n // 2)
    for name in ("full", "half_n"):
        runs.setdefault(name, {}).update(measure_run(work / name, work, env, args.commands))
    if not (work / "half_t" / "manifest.json").exists():
        derive_run(full, work / "half_t", t // 2, n, frames_from=full)
    others = [c for c in args.commands if c != "project"]
    runs.setdefault("half_t", {}).update(measure_run(work / "half_t", work, env, others))
    baseline, _, _ = peak_rss([sys.executable, "-c", _BASELINE], env)
    report = {
        "commit": _commit(),
        "sizes": {
            k: {"checkpoints": v[0], "points": v[1], "dim": args.dim} for k, v in sizes.items()
        },
        "features_mb": t * n * args.dim * 4 / 2**20,
        "baseline_mb": baseline / 2**20,
        "runs": runs,
        "target": {"checkpoints": args.target[0], "points": args.target[1]},
        "extrapolated": extrapolate(sizes, runs, tuple(args.target)),
        "targets_mb": TARGETS_MB,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(_markdown(report))
    print(_markdown(report))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _markdown(report: dict[str, Any]) -> str:
    full = report["sizes"]["full"]
    target = report["target"]
    lines = [
        f"# Peak memory (commit {report['commit']})",
        "",
        f"Run of {full['checkpoints']} checkpoints × {full['points']:,} points × {full['dim']} "
        f"features ({report['features_mb']:.0f} MB of float32 features); interpreter with torch "
        f"and sentrycam_widget imported: {report['baseline_mb']:.0f} MB.",
        "",
        f"| command | peak RSS (MB) | wall (s) | extrapolated to {target['checkpoints']} × "
        f"{target['points']:,} (MB) | target (MB) | commit |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name in COMMANDS:
        row = report["runs"]["full"][name]
        goal = report["targets_mb"].get(name)
        lines.append(
            f"| {name} | {row['peak_mb']:.0f} | {row['wall_s']:.1f} | "
            f"{report['extrapolated'].get(name, {}).get('predicted_mb', float('nan')):.0f} | "
            f"{'' if goal is None else f'≤ {goal}'} | {row.get('commit', '')} |"
        )
    widget = report["runs"]["full"]["kernel widget"]
    lines += [
        "",
        f"The kernel-side widget keeps {widget['kept_mb']:.0f} MB (RSS once built, "
        f"{widget['frames']} frames); `export --html` wrote "
        f"{report['runs']['full']['export --html']['html_mb']:.0f} MB.",
        "Extrapolation: `peak = base + N (a + b T)` fitted through T × N, T/2 × N and T × N/2 "
        "(`project`: `base + a N`; `evaluate`: `base + a N + b T`, it keeps a fixed 2,000-point "
        "subsample of each checkpoint).",
        "",
    ]
    return "\n".join(lines)


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
