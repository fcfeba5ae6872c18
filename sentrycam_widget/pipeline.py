"""Checkpoint -> frame -> run directory: the one place that ties projectors, metrics and the store.

:func:`project_checkpoint` is what the monitor's worker and the CLI call for each checkpoint;
:func:`project_run` computes, resumably, every frame a recorded run still lacks;
:func:`import_arrays` turns bring-your-own arrays into a run directory.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .capture import checkpoint_from_arrays
from .errors import InputError, RunFormatError, SentryCamError
from .projection.base import Projector, make_projector
from .records import Checkpoint, Frame
from .store import DamagedEntryWarning, RunStore

ProgressCallback = Callable[[Frame, int, int], None]


def project_checkpoint(
    projector: Projector,
    checkpoint: Checkpoint,
    store: RunStore | None = None,
    *,
    metrics: bool = True,
    annotate: Callable[[Frame], None] | None = None,
    threads: int | None = 1,
) -> Frame:
    """Project one checkpoint, time it, score it and (with ``store``) keep frame and state.

    ``frame.timings["total"]`` is the projector's wall time and ``frame.timings["metrics"]``
    the scoring time. ``annotate`` runs just before the frame is stored (e.g. to attach
    alerts). The projector state is saved only when this frame is the method's latest, just
    before the frame, so the run always holds the state of its newest stored frame. ``threads`` caps torch's intra-op
    threads while projecting (``None`` leaves them): the projector's small matrices gain little
    from more threads, and on busy cores OpenMP teams spin-wait on each other (measured 13 s
    with 1 thread against 172 s with 2 for the README's example on a loaded 2-core machine).
    """
    with torch_threads(threads):
        return _project_and_keep(projector, checkpoint, store, metrics, annotate)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run a block with torch's intra-op thread count set to ``threads``, then restore it."""
    import torch

    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _project_and_keep(
    projector: Projector,
    checkpoint: Checkpoint,
    store: RunStore | None,
    metrics: bool,
    annotate: Callable[[Frame], None] | None,
) -> Frame:
    start = time.perf_counter()
    frame = projector.update(checkpoint)
    frame.timings["total"] = time.perf_counter() - start
    if frame.index != checkpoint.index or frame.method != projector.method:
        raise SentryCamError(
            f"{type(projector).__name__}.update returned frame {frame.method}/{frame.index} for "
            f"checkpoint {checkpoint.index} of method {projector.method}"
        )
    if metrics:
        from .metrics import frame_metrics

        start = time.perf_counter()
        frame.metrics.update(frame_metrics(checkpoint, frame))
        frame.timings["metrics"] = time.perf_counter() - start
    if annotate is not None:
        annotate(frame)
    if store is not None:
        # The state goes first, the frame commits it, older states go last: killed at any
        # point, the run keeps the state that belongs to its newest frame (exact resume).
        latest = frame.index > max(store.frame_indices(frame.method), default=-1)
        if latest:
            store.save_projector_state(frame.method, frame.index, projector.state_dict())
        store.append_frame(frame)
        if latest:
            store.prune_projector_states(frame.method, keep=frame.index)
    return frame


def project_run(
    store: RunStore,
    method: str,
    *,
    progress: ProgressCallback | None = None,
    metrics: bool = True,
    threads: int | None = 1,
    **projector_options: Any,
) -> list[Frame]:
    """Compute the frames of ``method`` that ``store`` still lacks, in index order, resumably.

    Each stretch of missing checkpoints gets a projector resumed from the frames before it (and
    from the saved state when that state belongs to the frame just before the stretch), so an
    interrupted run continues where it stopped and holes left by a busy monitor are backfilled.
    ``progress(frame, done, total)`` is called after each frame (see :func:`print_progress`);
    ``threads`` is passed to :func:`project_checkpoint`.
    """
    missing = store.missing_frames(method)
    frames: list[Frame] = []
    for stretch in _missing_stretches(missing, store.frame_indices(method)):
        projector = make_projector(method, **projector_options)
        _resume(projector, store, method, before=stretch[0])
        for index in stretch:
            checkpoint = _readable_checkpoint(store, index)
            if checkpoint is None:
                continue
            frame = project_checkpoint(
                projector, checkpoint, store, metrics=metrics, threads=threads
            )
            frames.append(frame)
            if progress is not None:
                progress(frame, len(frames), len(missing))
    return frames


def print_progress(frame: Frame, done: int, total: int) -> None:
    """One line per projected checkpoint: latency and the headline faithfulness numbers."""
    parts = [f"[{done}/{total}] {frame.method} checkpoint {frame.index} (epoch {frame.epoch})"]
    parts.append(f"{frame.timings.get('total', float('nan')):.2f} s")
    for key, label in (("trustworthiness", "T(15)"), ("knn_preservation", "kNN"), ("ppr", "PPR")):
        if key in frame.metrics:
            parts.append(f"{label} {frame.metrics[key]:.3f}")
    print(" | ".join(parts), flush=True)


def import_arrays(
    source: str | os.PathLike[str] | dict[str, Any], run_dir: str | os.PathLike[str]
) -> RunStore:
    """Create a run from arrays: ``features`` [T, N, D], ``labels`` [N] and optionally ``logits``
    [T, N, C], ``head_W`` [T, C, D], ``head_b`` [T, C], ``val_loss`` [T], ``epochs`` [T].

    ``source`` is an ``.npz`` path or a dict of arrays. With a head and no logits,
    ``logits = features @ head_W.T + head_b``.
    """
    arrays = _load_import_arrays(source)
    features = np.asarray(arrays["features"])
    if features.ndim != 3:
        raise InputError(f"features must be [T, N, D], got shape {features.shape}")
    n_checkpoints = features.shape[0]
    if n_checkpoints < 1:
        raise InputError("features hold no checkpoints (T = 0)")
    per_checkpoint = {k: arrays.get(k) for k in ("logits", "head_W", "head_b", "val_loss")}
    for key, value in per_checkpoint.items():
        if value is not None and np.shape(value)[:1] != (n_checkpoints,):
            raise InputError(
                f"{key} must have T = {n_checkpoints} entries first, got {np.shape(value)}"
            )
    epochs = np.asarray(arrays.get("epochs", np.arange(n_checkpoints)))
    if epochs.shape != (n_checkpoints,):
        raise InputError(f"epochs must be [T] = [{n_checkpoints}], got shape {epochs.shape}")
    if not np.isfinite(features).all():
        bad = np.unique(np.nonzero(~np.isfinite(features))[0]).tolist()
        raise InputError(f"features contain NaN/inf at checkpoint(s) {bad}")
    store: RunStore | None = None
    for t in range(n_checkpoints):
        val_loss = per_checkpoint["val_loss"]
        checkpoint = checkpoint_from_arrays(
            t,
            int(epochs[t]),
            features[t],
            arrays["labels"],
            logits=_row(per_checkpoint["logits"], t),
            head_W=_row(per_checkpoint["head_W"], t),
            head_b=_row(per_checkpoint["head_b"], t),
            scalars={} if val_loss is None else {"val_loss": float(val_loss[t])},
        )
        if store is None:
            store = RunStore.create(run_dir, checkpoint.labels, n_features=checkpoint.n_features)
        store.append_checkpoint(checkpoint)
    assert store is not None
    return store


def _row(array: Any, t: int) -> Any:
    return None if array is None else array[t]


def _load_import_arrays(source: str | os.PathLike[str] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(source, dict):
        arrays = dict(source)
    else:
        path = Path(source)
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except FileNotFoundError as exc:
            raise InputError(f"{path}: no such file") from exc
        except Exception as exc:
            raise InputError(f"{path}: not a readable .npz file ({exc})") from exc
    missing = [key for key in ("features", "labels") if key not in arrays]
    if missing:
        raise InputError(
            f"import needs arrays {', '.join(missing)}; got {', '.join(sorted(arrays))}"
        )
    return arrays


def _missing_stretches(missing: list[int], done: list[int]) -> list[list[int]]:
    """Split missing indices into runs not interrupted by an existing frame."""
    done_set = set(done)
    stretches: list[list[int]] = []
    for index in missing:
        previous = stretches[-1][-1] if stretches else None
        if previous is not None and not any(previous < d < index for d in done_set):
            stretches[-1].append(index)
        else:
            stretches.append([index])
    return stretches


class HistoryBefore:
    """A ``RunHistory`` view of ``store`` as it was before checkpoint ``limit``.

    What a projector resuming just before ``limit`` may see (used to backfill holes).
    """

    def __init__(self, store: RunStore, limit: int) -> None:
        self._store = store
        self._limit = limit

    def frame_indices(self, method: str) -> list[int]:
        return [i for i in self._store.frame_indices(method) if i < self._limit]

    def checkpoint(self, index: int) -> Checkpoint:
        return self._store.checkpoint(index)

    def frame(self, method: str, index: int) -> Frame:
        return self._store.frame(method, index)


def _resume(projector: Projector, store: RunStore, method: str, *, before: int) -> None:
    history = HistoryBefore(store, before)
    prior = history.frame_indices(method)
    if not prior:
        return
    projector.resume(history, _state_for(store, method, prior[-1]))


def _state_for(store: RunStore, method: str, index: int) -> dict[str, Any] | None:
    try:
        saved = store.load_projector_state(method, index)
    except RunFormatError as exc:
        warnings.warn(f"ignoring projector state: {exc}", DamagedEntryWarning, stacklevel=3)
        return None
    return None if saved is None else saved[1]


def _readable_checkpoint(store: RunStore, index: int) -> Checkpoint | None:
    try:
        return store.checkpoint(index)
    except RunFormatError as exc:
        warnings.warn(f"cannot project: {exc}", DamagedEntryWarning, stacklevel=3)
        return None
