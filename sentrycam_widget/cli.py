"""``python -m sentrycam_widget``: demo, import, project, evaluate, export and warmup commands.

Every error this package raises on purpose (:class:`~sentrycam_widget.errors.SentryCamError`)
ends the command with its message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import InputError, SentryCamError

if TYPE_CHECKING:
    from .store import RunStore

_EXAMPLES = """\
examples:
  python -m sentrycam_widget demo --out runs/digits --epochs 12
  python -m sentrycam_widget import my_run.npz runs/mine
  python -m sentrycam_widget project runs/mine --method sentrycam
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

_REQUIRED_KEYS = ("features", "labels")
_OPTIONAL_KEYS = ("logits", "head_W", "head_b", "val_loss", "epochs")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the command; return the exit code (2 on a SentryCamError)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except SentryCamError as exc:
        print(f"error: {exc}", file=sys.stderr)
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
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(commands)
    _add_import(commands)
    _add_project(commands)
    _add_evaluate(commands)
    _add_export(commands)
    _add_audit(commands)
    _add_bench(commands)
    _add_warmup(commands)
    return parser


def _command(
    commands: argparse._SubParsersAction, name: str, help_text: str, description: str | None = None
) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=help_text,
        description=description or help_text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_demo(commands: argparse._SubParsersAction) -> None:
    p = _command(
        commands,
        "demo",
        "train a small CNN on scikit-learn's digits, record and project every epoch",
        "Train a small CNN on scikit-learn's bundled 8x8 digits (no download), record every "
        "epoch, project with SentryCam, write the run directory and a PNG contact sheet, and "
        "print per-epoch latency and faithfulness.",
    )
    p.add_argument("--out", type=Path, default=Path("sentrycam_demo"), help="run directory")
    p.add_argument("--epochs", type=_positive_int, default=12, help="training epochs (12)")
    p.add_argument("--seed", type=int, default=0, help="seed for data split, model, projection")
    _threads_argument(p)
    p.set_defaults(handler=_run_demo)


def _add_import(commands: argparse._SubParsersAction) -> None:
    p = _command(commands, "import", "create a run directory from a .npz of arrays", _IMPORT_HELP)
    p.add_argument("file", type=Path, metavar="FILE.npz")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.set_defaults(handler=_run_import)


def _add_project(commands: argparse._SubParsersAction) -> None:
    p = _command(
        commands,
        "project",
        "compute the frames a run is still missing (resumable)",
        "Project every checkpoint of RUN_DIR that has no frame of METHOD yet, in order, resuming "
        "the projector from the stored frames. Safe to interrupt and rerun.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    _method_argument(p)
    p.add_argument("--seed", type=int, default=0, help="projector seed (0)")
    _threads_argument(p)
    p.set_defaults(handler=_run_project)


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    p = _command(
        commands,
        "evaluate",
        "faithfulness metrics per checkpoint and the run's temporal metrics",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    _method_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON on stdout (else a table)")
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
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    _method_argument(p)
    target = p.add_mutually_exclusive_group(required=True)
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
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
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


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


# ------------------------------------------------------------------------------- import


def load_import_npz(path: Path) -> dict[str, np.ndarray]:
    """Read and check an import file; every problem names the key (or the file) at fault."""
    arrays = _read_npz(path)
    unknown = sorted(set(arrays) - set(_REQUIRED_KEYS) - set(_OPTIONAL_KEYS))
    if unknown:
        raise InputError(
            f"{path}: unknown key(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(_REQUIRED_KEYS + _OPTIONAL_KEYS)}"
        )
    for key in _REQUIRED_KEYS:
        if key not in arrays:
            raise InputError(f"{path}: missing required key {key!r}")
    features = _float_key(arrays, "features", ndim=3)
    t, n, d = features.shape
    if t < 1 or n < 2 or d < 1:
        raise InputError(
            f"key 'features' must be [T,N,D] with T>=1, N>=2, D>=1, got {features.shape}"
        )
    checked = {"features": features, "labels": _labels_key(arrays, n)}
    if "logits" in arrays:
        checked["logits"] = _float_key(arrays, "logits", ndim=3, leading=(t, n))
    checked.update(_head_keys(arrays, t, d, checked.get("logits")))
    if "val_loss" in arrays:
        checked["val_loss"] = _float_key(arrays, "val_loss", ndim=1, leading=(t,))
    checked["epochs"] = _epochs_key(arrays, t)
    return checked


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise InputError(f"import file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not a readable .npz file of plain arrays: {exc}") from exc


def _float_key(
    arrays: dict[str, np.ndarray], key: str, ndim: int, leading: tuple[int, ...] = ()
) -> np.ndarray:
    value = arrays[key]
    if value.dtype.kind not in "fiu" or value.ndim != ndim:
        raise InputError(
            f"key {key!r} must be a {ndim}-d numeric array, got {value.dtype} with shape {value.shape}"
        )
    if value.shape[: len(leading)] != leading:
        raise InputError(
            f"key {key!r} has shape {value.shape}; its leading dimensions must be {leading}"
        )
    value = value.astype(np.float32)
    if not np.isfinite(value).all():
        bad = int((~np.isfinite(value)).sum())
        raise InputError(f"key {key!r} contains {bad} NaN/inf value(s)")
    return value


def _labels_key(arrays: dict[str, np.ndarray], n: int) -> np.ndarray:
    labels = arrays["labels"]
    if labels.dtype.kind not in "iu" or labels.shape != (n,):
        raise InputError(
            f"key 'labels' must be integer [N] = [{n}] (N from features), got {labels.dtype} "
            f"with shape {labels.shape}"
        )
    if labels.min() < 0:
        raise InputError("key 'labels' must hold non-negative class indices")
    if np.unique(labels).size < 2:
        raise InputError("key 'labels' has only one class; at least two are needed")
    return labels.astype(np.int64)


def _head_keys(
    arrays: dict[str, np.ndarray], t: int, d: int, logits: np.ndarray | None
) -> dict[str, np.ndarray]:
    if "head_b" in arrays and "head_W" not in arrays:
        raise InputError("key 'head_b' was given without 'head_W'")
    if "head_W" not in arrays:
        return {}
    weight = _float_key(arrays, "head_W", ndim=3, leading=(t,))
    if weight.shape[2] != d:
        raise InputError(f"key 'head_W' must be [T,C,D] with D = {d}, got shape {weight.shape}")
    c = weight.shape[1]
    if logits is not None and logits.shape[2] != c:
        raise InputError(f"key 'head_W' has C = {c} classes but 'logits' has {logits.shape[2]}")
    out = {"head_W": weight}
    if "head_b" in arrays:
        out["head_b"] = _float_key(arrays, "head_b", ndim=2, leading=(t, c))
    return out


def _epochs_key(arrays: dict[str, np.ndarray], t: int) -> np.ndarray:
    if "epochs" not in arrays:
        return np.arange(t, dtype=np.int64)
    epochs = arrays["epochs"]
    if epochs.dtype.kind not in "iu" or epochs.shape != (t,):
        raise InputError(
            f"key 'epochs' must be integer [T] = [{t}], got {epochs.dtype} with shape {epochs.shape}"
        )
    if t > 1 and not (np.diff(epochs) > 0).all():
        raise InputError("key 'epochs' must be strictly increasing")
    return epochs.astype(np.int64)


# ------------------------------------------------------------------------------- warmup


def warmup() -> dict[str, float]:
    """Compile umap-learn's cacheable numba code into numba's on-disk cache, once per install.

    SentryCam's own graph code is numpy/torch and needs none of this; the UMAP baseline does.
    pynndescent compiles in every fresh process whatever is cached, so the tiny UMAP fit stays
    below the size where umap-learn switches to it. Returns seconds per step.
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    import umap
    import umap.umap_

    lap("import_s")
    data = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    distances = np.sqrt(((data[:, None] - data[None]) ** 2).sum(-1))
    knn_indices = np.argsort(distances, axis=1)[:, :10]
    knn_dists = np.take_along_axis(distances, knn_indices, axis=1)
    umap.umap_.fuzzy_simplicial_set(
        data,
        10,
        np.random.RandomState(0),
        "euclidean",
        knn_indices=knn_indices,
        knn_dists=knn_dists,
    )
    lap("fuzzy_simplicial_set_s")
    umap.UMAP(n_neighbors=10, n_epochs=5, random_state=0, n_jobs=1).fit_transform(data)
    lap("umap_fit_s")
    return timings


def _run_warmup(args: argparse.Namespace) -> int:
    timings = warmup()
    parts = ", ".join(
        f"{name[:-2].replace('_', ' ')} {secs:.1f} s" for name, secs in timings.items()
    )
    print(f"umap-learn ready (numba cache warm): {parts}")
    return 0


def _run_import(args: argparse.Namespace) -> int:
    from .pipeline import import_arrays

    store = import_arrays(load_import_npz(args.file), args.run_dir)
    print(
        f"imported {len(store.checkpoint_indices())} checkpoints of {store.n_points} points "
        f"(D = {store.n_features}) into {store.path}"
    )
    return 0


# ------------------------------------------------------------------------------- evaluate / export

_FRAME_METRICS = ("trustworthiness", "continuity", "knn_preservation", "knn_count_self")


def _open_run(run_dir: Path) -> RunStore:
    from .store import RunStore

    return RunStore.open(run_dir)


def _check_method(method: str, store: RunStore | None = None) -> None:
    """Unknown methods fail with the list of those available (registered, or stored in the run)."""
    from .projection import available_methods

    known = sorted(set(available_methods()) | set(store.methods() if store else ()))
    if method not in known:
        raise InputError(f"unknown projection method {method!r}; available: {', '.join(known)}")


def evaluate_run(store: RunStore, method: str) -> dict[str, object]:
    """Per-checkpoint frame metrics (stored ones, computed where missing) and temporal metrics."""
    from .metrics import frame_metrics, temporal_metrics

    _check_method(method, store)
    indices = store.frame_indices(method)
    if not indices:
        raise InputError(
            f"{store.path} has no {method!r} frames; run `python -m sentrycam_widget project "
            f"{store.path} --method {method}` first"
        )
    rows, features, embeddings = [], [], []
    for index in indices:
        checkpoint, frame = store.checkpoint(index), store.frame(method, index)
        metrics = dict(frame.metrics)
        if not all(key in metrics for key in _FRAME_METRICS):
            metrics.update(frame_metrics(checkpoint, frame))
        rows.append({"index": index, "epoch": frame.epoch, "metrics": metrics})
        features.append(checkpoint.features)
        embeddings.append(frame.embedding)
    return {
        "run": str(store.path),
        "method": method,
        "checkpoints": rows,
        "temporal": temporal_metrics(features, embeddings),
    }


def _jsonable(value: object) -> object:
    """JSON-safe copy: numpy scalars to Python numbers, NaN/inf to null (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    return value


def _run_evaluate(args: argparse.Namespace) -> int:
    report = evaluate_run(_open_run(args.run_dir), args.method)
    if args.json:
        print(json.dumps(_jsonable(report), indent=2, allow_nan=False))
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

    result = audit_run(_open_run(args.run_dir), method=args.method)
    if args.json:
        keep = {key: result[key] for key in ("alerts", "first_firing", "note")}
        print(json.dumps(_jsonable(keep), indent=2, allow_nan=False))
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


def _run_project(args: argparse.Namespace) -> int:
    from .pipeline import print_progress, project_run

    _check_method(args.method)
    store = _open_run(args.run_dir)
    missing = store.missing_frames(args.method)
    if not missing:
        print(
            f"nothing to do: all {len(store.checkpoint_indices())} checkpoints already have "
            f"{args.method} frames"
        )
        return 0
    print(f"projecting {len(missing)} checkpoint(s) with {args.method}", flush=True)
    frames = project_run(
        store, args.method, progress=print_progress, threads=args.threads, seed=args.seed
    )
    print(f"done: {len(frames)} new {args.method} frame(s) in {store.path}")
    return 0
