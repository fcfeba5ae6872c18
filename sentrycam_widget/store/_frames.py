"""The frames side of a run directory: each method's frames and its projector's saved states."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import InputError, RunFormatError
from ..filesystem import RunDir
from ..records import Frame
from ._checks import check_frame
from ._format import (
    FRAME_KEYS,
    METHOD,
    VERSION,
    background_from,
    entry_indices,
    entry_meta,
    json_array,
    load_npz,
)
from ._state import prune_states, read_state, write_state


class FrameStore:
    """Frames and projector states of a run; :class:`~sentrycam_widget.store.RunStore` is one.

    It works on the run's ``files`` and ``n_points`` and on its checkpoint side
    (``checkpoint_indices``, ``_checkpoint_key``, ``_read_or_skip``, ``_mark_good``).
    """

    files: RunDir
    location: str
    n_points: int
    checkpoint_indices: Callable[[], list[int]]
    _checkpoint_key: Callable[[int], str]
    _read_or_skip: Callable[[str, Callable[[], Any]], Any]
    _mark_good: Callable[[str], None]

    def methods(self) -> list[str]:
        """Projection methods with a frames directory.

        Returns
        -------
        list of str
            Sorted method names.
        """
        return sorted(name for name in self.files.list("frames") if METHOD.match(name))

    def frame_indices(self, method: str) -> list[int]:
        """Checkpoint indices that have a complete frame of ``method``.

        Parameters
        ----------
        method
            A projection method.

        Returns
        -------
        list of int
            Ascending checkpoint indices.
        """
        return entry_indices(self.files, self._method_dir(method))

    def missing_frames(self, method: str) -> list[int]:
        """Stored checkpoints that have no frame of ``method`` yet.

        Parameters
        ----------
        method
            A projection method.

        Returns
        -------
        list of int
            Ascending checkpoint indices.
        """
        done = set(self.frame_indices(method))
        return [i for i in self.checkpoint_indices() if i not in done]

    def append_frame(self, frame: Frame, *, replace: bool = False) -> None:
        """Store one frame (atomically); its checkpoint must be stored.

        Parameters
        ----------
        frame
            The frame to append.
        replace
            Overwrite a stored frame of the same method and index instead of failing.
        """
        check_frame(self, frame)
        key = self._frame_key(frame.method, frame.index)
        if not replace and self.files.exists(key):
            where = self.files.describe(key)
            raise InputError(f"frame {frame.method}/{frame.index} is already stored at {where}")
        arrays: dict[str, np.ndarray] = {"embedding": frame.embedding}
        if frame.background is not None:
            arrays["bg_classes"] = frame.background.classes
            arrays["bg_alpha"] = frame.background.alpha
            arrays["bg_extent"] = np.asarray(frame.background.extent, dtype=np.float64)
        if frame.recon_pred is not None:
            arrays["recon_pred"] = frame.recon_pred
        meta = {
            "version": VERSION,
            "method": frame.method,
            "index": int(frame.index),
            "epoch": int(frame.epoch),
            "metrics": frame.metrics,
            "timings": frame.timings,
            "alerts": frame.alerts,
        }
        arrays["meta"] = json_array(meta)
        if replace:
            self.files.write(key, lambda f: np.savez(f, **arrays))
        elif not self.files.create_exclusive(key, lambda f: np.savez(f, **arrays)):
            where = self.files.describe(key)
            raise InputError(f"frame {frame.method}/{frame.index} is already stored at {where}")

    def frame(self, method: str, index: int) -> Frame:
        """Load one frame.

        Parameters
        ----------
        method
            The projection method.
        index
            The checkpoint index.

        Returns
        -------
        Frame
            The frame; a RunFormatError names the file if it is missing or damaged.
        """
        key = self._frame_key(method, index)
        path = self.files.describe(key)
        arrays = load_npz(self.files, key, FRAME_KEYS)
        meta = entry_meta(path, arrays, index)
        if meta.get("method") != method:
            raise RunFormatError(
                f"{path}: frame of method {meta.get('method')!r}, expected {method!r}"
            )
        embedding = arrays["embedding"]
        if embedding.shape != (self.n_points, 2):
            raise RunFormatError(
                f"{path}: embedding has shape {embedding.shape}, expected [{self.n_points}, 2]"
            )
        try:
            frame = Frame(
                method=method,
                index=int(meta["index"]),
                epoch=int(meta["epoch"]),
                embedding=embedding,
                background=background_from(path, arrays),
                recon_pred=arrays.get("recon_pred"),
                metrics=dict(meta.get("metrics", {})),
                timings=dict(meta.get("timings", {})),
                alerts=list(meta.get("alerts", [])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RunFormatError(f"{path}: {exc}") from exc
        self._mark_good(key)
        return frame

    def frame_location(self, method: str, index: int) -> str:
        """Where frame ``index`` of ``method`` is (or would be) stored, as messages name it."""
        return self.files.describe(self._frame_key(method, index))

    def readable_frame(self, method: str, index: int) -> Frame | None:
        """Frame ``index`` of ``method``, or None when it is damaged (warned, in ``damaged``)."""
        return self._read_or_skip(self._frame_key(method, index), lambda: self.frame(method, index))

    def frames(self, method: str) -> list[Frame]:
        """Every readable frame of ``method`` in index order; damaged ones are skipped and reported.

        Parameters
        ----------
        method
            The projection method.

        Returns
        -------
        list of Frame
            The frames (the run's ``damaged`` lists those skipped).
        """
        frames = []
        for index in self.frame_indices(method):
            key = self._frame_key(method, index)
            frame = self._read_or_skip(key, lambda i=index: self.frame(method, i))
            if frame is not None:
                frames.append(frame)
        return frames

    # ---------------------------------------------------------------- projector state
    def save_projector_state(self, method: str, index: int, state: Mapping[str, Any]) -> None:
        """Keep the projector's state after checkpoint ``index`` so a later process can resume.

        Each index has its own file, written *before* its frame: whatever moment a writer is
        killed at, the state of the newest stored frame is kept (then
        :meth:`prune_projector_states`).

        Parameters
        ----------
        method
            The projection method.
        index
            The checkpoint the state belongs to.
        state
            The projector's ``state_dict()``.
        """
        write_state(self.files, self._method_dir(method), method, index, state)

    def load_projector_state(
        self, method: str, index: int | None = None
    ) -> tuple[int, dict[str, Any]] | None:
        """A state saved by :meth:`save_projector_state`.

        Parameters
        ----------
        method
            The projection method.
        index
            The checkpoint whose state to load (default: the newest saved).

        Returns
        -------
        tuple of (int, dict) or None
            ``(index, state)``, or None if there is none; RunFormatError naming the file if it
            is damaged.
        """
        return read_state(self.files, self._method_dir(method), method, index)

    def prune_projector_states(self, method: str, keep: int) -> None:
        """Remove the states saved before checkpoint ``keep``; call once frame ``keep`` is stored.

        Parameters
        ----------
        method
            The projection method.
        keep
            The oldest checkpoint whose state is kept.
        """
        prune_states(self.files, self._method_dir(method), keep)

    # ---------------------------------------------------------------- internals
    @staticmethod
    def _method_dir(method: str) -> str:
        if not isinstance(method, str) or not METHOD.match(method):
            raise InputError(f"invalid method name {method!r}: use letters, digits, '_', '.', '-'")
        return f"frames/{method}"

    def _frame_key(self, method: str, index: int) -> str:
        return f"{self._method_dir(method)}/{int(index):06d}.npz"
