"""Checkpoint -> frame -> run directory: the one place that ties projectors, metrics and the store.

:func:`project_checkpoint` is what the monitor's worker and the CLI call for each checkpoint;
:func:`project_run` computes, resumably, every frame a recorded run still lacks.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from .errors import RunFormatError, SentryCamError
from .pacing import pause
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
    replace: bool = False,
) -> Frame:
    """Project one checkpoint, time it, score it and (with ``store``) keep frame and state.

    The projector state is saved only when this frame is the method's latest, just before the
    frame, so the run always holds the state of its newest stored frame.

    Parameters
    ----------
    projector
        The method's projector, fed checkpoints in increasing index order.
    checkpoint
        The checkpoint to project.
    store
        The run to append the frame (and the projector's state) to, if any.
    metrics
        Score the frame (trustworthiness, continuity, kNN preservation, PPR).
    annotate
        Runs just before the frame is stored (e.g. to attach alerts).
    threads
        torch's intra-op threads while projecting (``None`` leaves them); one is the default
        because the projector's small matrices gain little from more, and on busy cores OpenMP
        teams spin-wait on each other (README, "Performance notes").

    Returns
    -------
    Frame
        The frame; ``timings["total"]`` is the projector's wall time and
        ``timings["metrics"]`` the scoring time.
    """
    with torch_threads(threads):
        return _project_and_keep(projector, checkpoint, store, metrics, annotate, replace)


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
    replace: bool,
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

        pause()
        start = time.perf_counter()
        frame.metrics.update(frame_metrics(checkpoint, frame))
        frame.timings["metrics"] = time.perf_counter() - start
    if annotate is not None:
        annotate(frame)
    if store is not None:
        pause()
        # The state goes first, the frame commits it, older states go last: killed at any
        # point, the run keeps the state that belongs to its newest frame (exact resume).
        latest = frame.index > max(store.frame_indices(frame.method), default=-1)
        if latest:
            store.save_projector_state(frame.method, frame.index, projector.state_dict())
        store.append_frame(frame, replace=replace)
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
    damaged: dict[int, str] | None = None,
    **projector_options: Any,
) -> list[Frame]:
    """Compute the frames of ``method`` that ``store`` still lacks, in index order, resumably.

    Each stretch of missing checkpoints gets a projector resumed from the frames before it (and
    from the saved state when that state belongs to the frame just before the stretch), so an
    interrupted run continues where it stopped and holes left by a busy monitor are backfilled.
    Damaged frames are recomputed and replaced, each with a DamagedEntryWarning.

    Parameters
    ----------
    store
        The run.
    method
        The projection method.
    progress
        Called as ``progress(frame, done, total)`` after each frame (see
        :func:`print_progress`).
    metrics, threads
        As for :func:`project_checkpoint`.
    damaged
        The damaged frames (index -> why) if already known; default :func:`damaged_frames`.
    **projector_options
        Passed to :func:`~sentrycam_widget.projection.make_projector`.

    Returns
    -------
    list of Frame
        The frames computed now, in index order.
    """
    damaged = damaged_frames(store, method) if damaged is None else damaged
    for index, reason in damaged.items():
        warnings.warn(f"recomputing damaged frame {index}: {reason}", DamagedEntryWarning, 2)
    missing = sorted({*store.missing_frames(method), *damaged})
    done = [i for i in store.frame_indices(method) if i not in damaged]
    frames: list[Frame] = []
    for stretch in _missing_stretches(missing, done):
        projector = resumed_projector(
            store, method, stretch[0], skip=set(damaged), **projector_options
        )
        for index in stretch:
            checkpoint = readable_checkpoint(store, index)
            if checkpoint is None:
                continue
            frame = project_checkpoint(
                projector,
                checkpoint,
                store,
                metrics=metrics,
                threads=threads,
                replace=index in damaged,
            )
            frames.append(frame)
            if progress is not None:
                progress(frame, len(frames), len(missing))
    return frames


def damaged_frames(store: RunStore, method: str) -> dict[int, str]:
    """Stored frames of ``method`` that cannot be read back: index -> why (reads each once)."""
    damaged = {}
    for index in store.frame_indices(method):
        try:
            store.frame(method, index)
        except RunFormatError as exc:
            damaged[index] = str(exc)
    return damaged


def print_progress(frame: Frame, done: int, total: int) -> None:
    """One line per projected checkpoint: latency and the headline faithfulness numbers."""
    print(f"[{done}/{total}] {progress_line(frame)}", flush=True)


def progress_line(frame: Frame) -> str:
    """``method checkpoint i (epoch e) | latency | T(15) | kNN | PPR`` of one projected frame."""
    parts = [f"{frame.method} checkpoint {frame.index} (epoch {frame.epoch})"]
    parts.append(f"{frame.timings.get('total', float('nan')):.2f} s")
    for key, label in (("trustworthiness", "T(15)"), ("knn_preservation", "kNN"), ("ppr", "PPR")):
        if key in frame.metrics:
            parts.append(f"{label} {frame.metrics[key]:.3f}")
    return " | ".join(parts)


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

    def __init__(self, store: RunStore, limit: int, skip: set[int] | None = None) -> None:
        self._store = store
        self._limit = limit
        self._skip = skip or set()

    def frame_indices(self, method: str) -> list[int]:
        indices = self._store.frame_indices(method)
        return [i for i in indices if i < self._limit and i not in self._skip]

    def checkpoint(self, index: int) -> Checkpoint:
        return self._store.checkpoint(index)

    def frame(self, method: str, index: int) -> Frame:
        return self._store.frame(method, index)


def resumed_projector(
    store: RunStore, method: str, before: int, skip: set[int] | None = None, **options: Any
) -> Projector:
    """A new ``method`` projector resumed from the run's frames before checkpoint ``before``.

    Parameters
    ----------
    store
        The run.
    method
        The projection method.
    before
        The first checkpoint the projector will be given.
    skip
        Frames not to resume from (damaged ones).
    **options
        Passed to :func:`make_projector`.

    Returns
    -------
    Projector
        Warm-started from the saved state when that state belongs to the frame just before.
    """
    projector = make_projector(method, **options)
    history = HistoryBefore(store, before, skip)
    prior = history.frame_indices(method)
    if prior:
        projector.resume(history, _state_for(store, method, prior[-1]))
    return projector


def _state_for(store: RunStore, method: str, index: int) -> dict[str, Any] | None:
    try:
        saved = store.load_projector_state(method, index)
    except RunFormatError as exc:
        warnings.warn(f"ignoring projector state: {exc}", DamagedEntryWarning, stacklevel=3)
        return None
    return None if saved is None else saved[1]


def readable_checkpoint(store: RunStore, index: int) -> Checkpoint | None:
    """Checkpoint ``index``, or None (with a DamagedEntryWarning) when it cannot be read."""
    try:
        return store.checkpoint(index)
    except RunFormatError as exc:
        warnings.warn(f"cannot project: {exc}", DamagedEntryWarning, stacklevel=3)
        return None
