"""``python -m sentrycam_widget``: demo, import, project, watch, evaluate, export, warmup commands.

Every error this package raises on purpose (:class:`~sentrycam_widget.errors.SentryCamError`)
ends the command with its message on stderr and exit code 2, never a traceback; a warning (a
damaged entry skipped, say) is one ``warning: ...`` line. ``--debug`` shows both in full.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._cli_messages import one_line_error, warnings_shown
from ._jsonio import jsonable
from .errors import InputError, SentryCamError

if TYPE_CHECKING:
    from .store import RunStore

_EXAMPLES = """\
examples:
  python -m sentrycam_widget demo --out runs/digits --epochs 12
  python -m sentrycam_widget import my_run.npz runs/mine
  python -m sentrycam_widget project runs/mine --method sentrycam
  python -m sentrycam_widget watch 's3://bucket/sweep/*' --method sentrycam --until-idle 600
  python -m sentrycam_widget evaluate runs/mine --method sentrycam --json > metrics.json
  python -m sentrycam_widget export runs/mine --method sentrycam --npz frames.npz
  python -m sentrycam_widget export runs/mine --method sentrycam --parquet frames.parquet
  python -m sentrycam_widget warmup
"""

_IMPORT_HELP = """\
Create a run directory from a .npz of arrays (bring your own representations).
Keys: features [T,N,D] float (required), labels [N] int (required), and optionally
logits [T,N,C], head_W [T,C,D] with head_b [T,C] (logits = features @ W.T + b),
val_loss [T], epochs [T] (increasing integers; default 0..T-1).
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the command; return the exit code (2 on a SentryCamError)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings_shown(debug=getattr(args, "debug", False)):
            return int(args.handler(args) or 0)
    except (SentryCamError, OSError) as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"error: {one_line_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; stored frames are kept, rerun to continue", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of all commands (also used to render ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m sentrycam_widget",
        description="Watch a classifier learn: record runs, project them with SentryCam, "
        "measure and export the frames.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(commands)
    _add_import(commands)
    _add_project(commands)
    _add_watch(commands)
    _add_evaluate(commands)
    _add_export(commands)
    _add_audit(commands)
    _add_bench(commands)
    _add_warmup(commands)
    return parser


def _command(
    commands: argparse._SubParsersAction, name: str, help_text: str, description: str | None = None
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name,
        help=help_text,
        description=description or help_text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show error tracebacks"
    )
    return parser


def _add_demo(commands: argparse._SubParsersAction) -> None:
    p = _command(
        commands,
        "demo",
        "train a small CNN on scikit-learn's digits, record and project every epoch",
        "Train a small CNN on scikit-learn's bundled 8x8 digits (no download), record every "
        "epoch, project with SentryCam, write the run directory and a PNG contact sheet, and "
        "print per-epoch latency and faithfulness.",
    )
    p.add_argument("--out", default="sentrycam_demo", help="run directory (path or fsspec URL)")
    p.add_argument("--epochs", type=_positive_int, default=12, help="training epochs (12)")
    p.add_argument("--seed", type=int, default=0, help="seed for data split, model, projection")
    _threads_argument(p)
    p.set_defaults(handler=_run_demo)


def _add_import(commands: argparse._SubParsersAction) -> None:
    p = _command(commands, "import", "create a run directory from a .npz of arrays", _IMPORT_HELP)
    p.add_argument("file", type=Path, metavar="FILE.npz")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory: a path or an fsspec URL")
    p.set_defaults(handler=_run_import)


def _add_project(commands: argparse._SubParsersAction) -> None:
    p = _command(
        commands,
        "project",
        "compute the frames a run is still missing (resumable)",
        "Project every checkpoint of RUN_DIR that has no frame of METHOD yet, in order, resuming "
        "the projector from the stored frames. Safe to interrupt and rerun.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory: a path or an fsspec URL")
    _method_argument(p)
    p.add_argument("--seed", type=int, default=0, help="projector seed (0)")
    _threads_argument(p)
    p.set_defaults(handler=_run_project)


def _add_watch(commands: argparse._SubParsersAction) -> None:
    p = _command(
        commands,
        "watch",
        "follow runs another process is writing and project each checkpoint as it lands",
        "Follow RUN (paths, fsspec URLs or globs over a sweep, re-read every poll): project every "
        "checkpoint without a METHOD frame, in order, as it lands; a restarted watcher resumes. "
        "A lease in the run keeps two watchers from writing the same frames: a second one exits "
        "with code 2 (or waits, with --wait). A writer that died leaves complete entries only; "
        "they are projected and the watcher waits for more (--until-idle ends it).",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories, URLs or globs")
    _method_argument(p)
    p.add_argument(
        "--until-idle",
        type=float,
        metavar="SECONDS",
        help="stop once nothing new has landed for SECONDS (default: follow until Ctrl-C)",
    )
    p.add_argument(
        "--wait", action="store_true", help="wait for a run another watcher holds, not exit 2"
    )
    p.add_argument(
        "--max-runs",
        type=_positive_int,
        metavar="N",
        help="hold at most N runs at once, so watchers on several machines share a sweep",
    )
    p.add_argument("--poll", type=float, default=2.0, help="seconds between looks (2)")
    p.add_argument("--seed", type=int, help="projector seed (the method's default, 0)")
    _threads_argument(p)
    p.set_defaults(handler=_run_watch)


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    p = _command(
        commands,
        "evaluate",
        "faithfulness metrics per checkpoint and the run's temporal metrics",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory: a path or an fsspec URL")
    _method_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON on stdout (else a table)")
    _strict_argument(p)
    p.set_defaults(handler=_run_evaluate)


def _add_export(commands: argparse._SubParsersAction) -> None:
    p = _command(
        commands,
        "export",
        "write a method's frames to .npz, Parquet or TensorBoard, or the run to offline HTML",
        "--npz: emb [T,N,2] float32, epochs [T] and, for methods with an inverse, recon_pred "
        "[T,N].\n--parquet: one row per checkpoint and point (pandas, Embedding Atlas).\n"
        "--tensorboard: the Embedding Projector's files in LOGDIR (pyarrow / tensorboard: "
        "pip install 'sentrycam-widget[export]').\n--html: one self-contained file (every method's frames, the widget's view) that "
        "scrubs in any browser without a kernel or network.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory: a path or an fsspec URL")
    _method_argument(p)
    target = p.add_mutually_exclusive_group(required=True)
    _strict_argument(p)
    target.add_argument("--npz", type=Path, metavar="OUT.npz", help="write the method's frames")
    target.add_argument("--html", type=Path, metavar="OUT.html", help="write the offline viewer")
    target.add_argument(
        "--parquet",
        type=Path,
        metavar="OUT.parquet",
        help="one long table: checkpoint, epoch, step, point, x, y, label, prediction, recon_pred",
    )
    target.add_argument(
        "--tensorboard",
        type=Path,
        metavar="LOGDIR",
        help="TensorBoard's Embedding Projector: one embedding per checkpoint, thumbnails as sprite",
    )
    p.set_defaults(handler=_run_export)


def _add_audit(commands: argparse._SubParsersAction) -> None:
    p = _command(
        commands,
        "audit",
        "geometry alerts of a recorded or imported run, and when each signal first fired",
        "Replay every checkpoint through the alert engine (feature-space signals; 2-D signals "
        "from METHOD's frames when present; the val_loss rule when checkpoints carry val_loss), "
        "store the alerts in the run, and print them with each signal's first firing.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory: a path or an fsspec URL")
    _method_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON on stdout (else a summary)")
    p.set_defaults(handler=_run_audit)


def _add_bench(commands: argparse._SubParsersAction) -> None:
    p = _command(
        commands,
        "bench",
        "SentryCam vs DVI vs UMAP (warm-started, independent) side by side",
        "Run sentrycam_widget.benchmarking.compare: both benchmark runs, every method, "
        "latency, first frame, faithfulness and the issue's targets, written to "
        "benchmarks/results/compare.{json,md,png} under the working directory. Options after "
        "'bench' go to it "
        "(e.g. --quick, --epochs N, --out DIR).",
    )
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="options for compare.py")
    p.set_defaults(handler=_run_bench)


def _add_warmup(commands: argparse._SubParsersAction) -> None:
    p = _command(
        commands,
        "warmup",
        "compile and cache umap-learn's numba code once, so the first frame is fast",
    )
    p.set_defaults(handler=_run_warmup)


def _method_argument(parser: argparse.ArgumentParser) -> None:
    from .projection import available_methods

    parser.add_argument(
        "--method",
        default="sentrycam",
        help=f"projection method: {', '.join(available_methods())} (default sentrycam)",
    )


def _threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch intra-op threads (1, as the live monitor's worker: on a busy machine more "
        "threads spin-wait on each other and run slower)",
    )


def _strict_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 2) on a damaged checkpoint or frame instead of skipping it with a warning",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


# ------------------------------------------------------------------------------- warmup / import


def _run_warmup(args: argparse.Namespace) -> int:
    from .warmup import warmup

    timings = warmup()
    parts = ", ".join(
        f"{name[:-2].replace('_', ' ')} {secs:.1f} s" for name, secs in timings.items()
    )
    print(f"umap-learn ready (numba cache warm): {parts}")
    return 0


def _run_import(args: argparse.Namespace) -> int:
    from .importing import import_arrays

    store = import_arrays(args.file, args.run_dir)
    print(
        f"imported {len(store.checkpoint_indices())} checkpoints of {store.n_points} points "
        f"(D = {store.n_features}) into {store.path}"
    )
    return 0


# ------------------------------------------------------------------------------- evaluate / export


def _open_run(run_dir: str) -> RunStore:
    from .store import RunStore

    return RunStore.open(run_dir)


def _require_writable(directory: Path, what: str) -> None:
    """Fail before any work when ``what`` could not write into ``directory``."""
    if not directory.is_dir():
        raise InputError(f"{directory}: no such directory to write {what} into")
    if not os.access(directory, os.W_OK):
        raise InputError(
            f"{directory}: not writable (permission denied), so {what} cannot be written"
        )


def _require_writable_run(run_dir: str, why: str) -> None:
    """A local run directory must be writable before a command computes what it will store."""
    if "://" in run_dir and not run_dir.startswith("file://"):
        return
    root = Path(run_dir.removeprefix("file://"))
    for directory in (root, root / "frames"):
        if directory.is_dir() and not os.access(directory, os.W_OK):
            raise InputError(f"{directory}: not writable (permission denied); {why}")


def _require_undamaged(store: RunStore, methods: list[str]) -> None:
    """``--strict``: every checkpoint and every frame of ``methods`` must read back whole."""
    for index in store.checkpoint_indices():
        store.checkpoint(index)
    for method in methods:
        for index in store.frame_indices(method):
            store.frame(method, index)


def _check_method(method: str, store: RunStore | None = None) -> None:
    from .projection.base import require_method

    require_method(method, store.methods() if store else ())


def _run_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_run

    report = evaluate_run(_open_run(args.run_dir), args.method, strict=args.strict)
    if args.json:
        print(json.dumps(jsonable(report), indent=2, allow_nan=False))
        return 0
    print(f"{'epoch':>6} {'T(15)':>7} {'C(15)':>7} {'kNN(15)':>8} {'PPR':>7}")
    for row in report["checkpoints"]:
        m = row["metrics"]
        ppr = f"{m['ppr']:7.3f}" if "ppr" in m else f"{'-':>7}"
        print(
            f"{row['epoch']:>6} {m['trustworthiness']:7.3f} {m['continuity']:7.3f} "
            f"{m['knn_preservation']:8.3f} {ppr}"
        )
    temporal = report["temporal"]
    print(
        f"temporal ranking {temporal['temporal_ranking']:.3f}, "
        f"mean displacement {temporal['displacement_mean']:.4f}"
    )
    return 0


def _run_export(args: argparse.Namespace) -> int:
    store = _open_run(args.run_dir)
    target = next(t for t in (args.html, args.npz, args.parquet, args.tensorboard) if t)
    _require_writable(Path(target).parent, "the export")
    if args.strict:
        _require_undamaged(store, store.methods() if args.html is not None else [args.method])
    if args.html is not None:
        from .html_export import export_run_html

        path = export_run_html(store.path, args.html)
        print(f"wrote the offline viewer of {store.path} to {path}")
        return 0
    from .export import export_npz
    from .export_parquet import export_parquet
    from .export_tensorboard import export_tensorboard

    _check_method(args.method, store)
    if args.tensorboard is not None:
        path = export_tensorboard(store, args.method, args.tensorboard)
        hint = f"; view with: tensorboard --logdir {path.parent}"
    elif args.parquet is not None:
        path, hint = export_parquet(store, args.method, args.parquet), ""
    else:
        path, hint = export_npz(store, args.method, args.npz), ""
    print(f"wrote {len(store.frame_indices(args.method))} {args.method} frames to {path}{hint}")
    return 0


def _run_audit(args: argparse.Namespace) -> int:
    from .audit import audit_run, format_audit

    _require_writable_run(args.run_dir, "audit writes alerts.json and the frames' alerts")
    result = audit_run(_open_run(args.run_dir), method=args.method)
    if args.json:
        keep = {key: result[key] for key in ("alerts", "first_firing", "note")}
        print(json.dumps(jsonable(keep), indent=2, allow_nan=False))
    else:
        print(format_audit(result))
    return 0


def _run_bench(args: argparse.Namespace) -> int:
    from .benchmarking.compare import main as compare_main

    return compare_main(list(args.bench_args))


# ------------------------------------------------------------------------------- demo / project


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.out, epochs=args.epochs, seed=args.seed, threads=args.threads)
    return 0


def _run_watch(args: argparse.Namespace) -> int:
    from .watch import watch

    _check_method(args.method)
    written = watch(
        args.runs,
        args.method,
        until_idle=args.until_idle,
        wait=args.wait,
        max_runs=args.max_runs,
        poll=args.poll,
        threads=args.threads,
        say=lambda line: print(line, flush=True),
        **({} if args.seed is None else {"seed": args.seed}),
    )
    print(
        f"idle for {args.until_idle:g} s: {sum(written.values())} new {args.method} frame(s) "
        f"in {len(written)} run(s)"
    )
    return 0


def _run_project(args: argparse.Namespace) -> int:
    from .pipeline import damaged_frames, print_progress, project_run

    _check_method(args.method)
    store = _open_run(args.run_dir)
    _require_writable_run(args.run_dir, "project writes frames into it")
    missing = store.missing_frames(args.method)
    damaged = damaged_frames(store, args.method)
    for index, reason in damaged.items():
        print(f"frame {index} is damaged, recomputing it: {reason}", flush=True)
    if not missing and not damaged:
        print(
            f"nothing to do: all {len(store.checkpoint_indices())} checkpoints already have "
            f"{args.method} frames"
        )
        return 0
    print(f"projecting {len(missing) + len(damaged)} checkpoint(s) with {args.method}", flush=True)
    frames = project_run(
        store,
        args.method,
        progress=print_progress,
        threads=args.threads,
        damaged=damaged,
        seed=args.seed,
    )
    print(f"done: {len(frames)} new {args.method} frame(s) in {store.path}")
    return 0
