"""The notebook widget: an anywidget whose BokehJS view scrubs through a run's frames.

Data model (everything the browser needs lives in synced traits, so a saved notebook and an
exported HTML file show every frame without a kernel):

- ``probe``: labels, palette (shared with :func:`render.palette`), class names, thumbnails;
  sent once.
- ``checkpoints`` / ``frames``: lists of references to small child models, one per checkpoint
  (epoch, predictions, confidence) and one per frame (coordinates, background raster, metrics,
  alerts). A new frame is sent exactly once, as its child model's binary state; the parent's
  list then grows by one short reference, so the bytes per frame do not grow with the run.
- ``status``: the worker's live status line (queue, projecting, errors).
- ``selection``: probe indices selected in the browser (synced both ways);
  ``frame_window``: how many decoded frames the browser keeps (memory stays flat on long runs).

Binary layout: float32 coordinates [N, 2], uint8 (or uint16 beyond 255 classes) class rasters,
uint8 alpha, uint16 predictions, uint8 confidence; never JSON number lists. Only one thread (the
monitor's worker) may call :meth:`SentryCamWidget.add_checkpoint` / ``add_frame`` /
``set_status``; each call is one coherent update (``hold_sync``).
"""

from __future__ import annotations

import json
import threading
from functools import cache
from pathlib import Path
from typing import Any

import anywidget
import bokeh
import ipywidgets
import numpy as np
import traitlets

from ._jsonio import jsonable
from .checks import as_labels, check_thumbnails
from .errors import InputError
from .records import Checkpoint, Frame
from .render import palette
from .store import RunStore

_STATIC = Path(__file__).parent / "static"
_REF_PREFIX = "anywidget:"
PLOT_SIZE = 520
FRAME_WINDOW = 24
"""Decoded frames the browser keeps at once (js/src/frames.js); the rest are re-decoded on demand."""


def _array(values: np.ndarray, dtype: str) -> dict[str, Any]:
    """``{dtype, shape, buffer}``: a numpy array as one binary buffer (decoded by js/src/data.js)."""
    array = np.ascontiguousarray(values, dtype=dtype)
    return {"dtype": dtype, "shape": list(array.shape), "buffer": memoryview(array).cast("B")}


def _refs_to_json(children: list[ipywidgets.Widget], _widget: Any) -> list[str]:
    return [f"{_REF_PREFIX}{child.model_id}" for child in children]


class _Payload(ipywidgets.Widget):
    """A child model holding one checkpoint's or one frame's data (base ``WidgetModel``)."""

    data = traitlets.Dict().tag(sync=True)


class _BokehSource(ipywidgets.Widget):
    """BokehJS's source as one model per kernel, referenced by every widget: a page (and a saved
    notebook) receives the 1.3 MB once however many widgets it shows."""

    source = traitlets.Unicode().tag(sync=True)


_shared: dict[str, _BokehSource] = {}
_shared_lock = threading.Lock()


def shared_bokeh() -> _BokehSource:
    """The kernel's one BokehJS model (made again if it was closed)."""
    with _shared_lock:
        model = _shared.get("bokeh")
        if model is None or model.comm is None:
            model = _shared["bokeh"] = _BokehSource(source=bokeh_js())
        return model


def _ref_to_json(child: ipywidgets.Widget | None, _widget: Any) -> str | None:
    return None if child is None else f"{_REF_PREFIX}{child.model_id}"


@cache
def bokeh_js() -> str:
    """BokehJS from the installed ``bokeh`` package (same version as Python's; no CDN)."""
    return (Path(bokeh.__file__).parent / "server" / "static" / "js" / "bokeh.min.js").read_text(
        encoding="utf-8"
    )


def _plot_item() -> str:
    """The Bokeh figure (background image, points image, trajectory, highlight): a json_item as text.

    Kept as a string: Bokeh's document JSON must be decoded in its own key order (a definition
    before its references), and saved notebooks are written with sorted keys. The sources start
    empty; the browser fills them from the frames. Models carry names so the
    JS finds them without knowing Bokeh's ids.
    """
    from bokeh.embed import json_item
    from bokeh.models import ColumnDataSource, Range1d
    from bokeh.plotting import figure

    fig = figure(
        width=PLOT_SIZE,
        height=PLOT_SIZE,
        x_range=Range1d(0, 1, name="x_range"),
        y_range=Range1d(0, 1, name="y_range"),
        tools="pan,wheel_zoom,box_zoom,reset,save",
        toolbar_location="right",
        output_backend="canvas",
        name="plot",
    )
    fig.toolbar.active_scroll = None  # the page scrolls past the plot; zoom is opt-in
    fig.grid.visible = False
    fig.axis.visible = False
    background = ColumnDataSource(
        {"image": [], "x": [], "y": [], "dw": [], "dh": []}, name="background"
    )
    fig.image_rgba(image="image", x="x", y="y", dw="dw", dh="dh", source=background)
    # points arrive as an RGBA raster drawn by the browser (js/src/plot.js)
    points = ColumnDataSource({"image": [], "x": [], "y": [], "dw": [], "dh": []}, name="points")
    fig.image_rgba(image="image", x="x", y="y", dw="dw", dh="dh", source=points)
    trail = ColumnDataSource({"xs": [], "ys": []}, name="trajectory")
    fig.multi_line(xs="xs", ys="ys", source=trail, line_color="#222222", line_width=1.2)
    vertices = ColumnDataSource({"x": [], "y": []}, name="trajectory_points")
    fig.scatter(x="x", y="y", source=vertices, size=3, fill_color="#222222", line_color=None)
    highlight = ColumnDataSource({"x": [], "y": []}, name="highlight")
    fig.scatter(
        x="x",
        y="y",
        source=highlight,
        size=14,
        fill_color=None,
        line_color="#000000",
        line_width=2,
    )
    return json.dumps(json_item(fig))


class SentryCamWidget(anywidget.AnyWidget):
    """Scrubbable view of a run: points over decision regions, per method, per checkpoint."""

    _esm = _STATIC / "widget.js"
    _css = _STATIC / "widget.css"
    _bokeh = traitlets.Instance(_BokehSource, allow_none=True).tag(sync=True, to_json=_ref_to_json)
    _bokeh_version = traitlets.Unicode(bokeh.__version__).tag(sync=True)
    _plot = traitlets.Unicode().tag(sync=True)
    probe = traitlets.Dict().tag(sync=True)
    methods = traitlets.List(traitlets.Unicode()).tag(sync=True)
    inverse = traitlets.Dict().tag(sync=True)
    checkpoints = traitlets.List().tag(sync=True, to_json=_refs_to_json)
    frames = traitlets.List().tag(sync=True, to_json=_refs_to_json)
    status = traitlets.Dict().tag(sync=True)
    selection = traitlets.List(traitlets.Int()).tag(sync=True)
    frame_window = traitlets.Int(FRAME_WINDOW, min=1).tag(sync=True)

    def __init__(
        self,
        labels: np.ndarray,
        methods: dict[str, bool],
        *,
        class_names: list[str] | None = None,
        thumbnails: np.ndarray | None = None,
        embed_bokeh: bool = True,
    ) -> None:
        """``methods`` maps each method name to whether it has an inverse (a background)."""
        labels = as_labels(labels)
        if labels.size < 2:
            raise InputError(f"labels must be [N] with N >= 2, got shape {labels.shape}")
        if not methods:
            raise InputError("the widget needs at least one projection method")
        n_classes = int(labels.max()) + 1
        super().__init__(
            _bokeh=shared_bokeh() if embed_bokeh else None,
            _plot=_plot_item(),
            probe=_probe_payload(labels, n_classes, class_names, thumbnails),
            methods=list(methods),
            inverse={m: bool(v) for m, v in methods.items()},
            status={},
        )
        self._frame_keys: set[tuple[str, int]] = set()

    @property
    def n_points(self) -> int:
        return int(self.probe["labels"]["shape"][0])

    def add_checkpoint(self, checkpoint: Checkpoint, status: dict[str, Any] | None = None) -> None:
        """Send one checkpoint's predictions (call from the single writer thread)."""
        payload = _Payload(data=checkpoint_payload(checkpoint))
        with self.hold_sync():
            self.checkpoints = [*self.checkpoints, payload]
            if status is not None:
                self.status = status

    def add_frame(self, frame: Frame, status: dict[str, Any] | None = None) -> None:
        """Send one frame (call from the single writer thread); each (method, index) once."""
        key = (frame.method, frame.index)
        if key in self._frame_keys:
            raise InputError(f"frame {key} was already sent to the widget")
        if len(frame.embedding) != self.n_points:
            raise InputError(
                f"frame has {len(frame.embedding)} points but the probe set has {self.n_points}"
            )
        payload = _Payload(data=frame_payload(frame))
        self._frame_keys.add(key)
        with self.hold_sync():
            self.frames = [*self.frames, payload]
            if status is not None:
                self.status = status

    @property
    def selected(self) -> np.ndarray:
        """Probe indices selected in the browser (lasso, box or click), sorted, as int64 [k]."""
        return np.asarray(self.selection, dtype=np.int64)

    def set_status(self, status: dict[str, Any]) -> None:
        self.status = status

    def payload_models(self) -> list[ipywidgets.Widget]:
        """The child models (checkpoints then frames), e.g. for exporting the state."""
        return [*self.checkpoints, *self.frames]


def _probe_payload(
    labels: np.ndarray,
    n_classes: int,
    class_names: list[str] | None,
    thumbnails: np.ndarray | None,
) -> dict[str, Any]:
    if labels.min() < 0 or labels.max() > np.iinfo(np.uint16).max:
        raise InputError("labels must be class indices in 0..65535")
    names = [str(c) for c in range(n_classes)] if class_names is None else list(class_names)
    if len(names) < n_classes:
        raise InputError(f"class_names has {len(names)} names but labels go up to {n_classes - 1}")
    payload: dict[str, Any] = {
        "labels": _array(labels, "uint16"),
        "palette": _array(palette(n_classes), "uint8"),
        "class_names": names,
        "thumbnails": None,
    }
    if thumbnails is not None:
        thumbs = check_thumbnails(thumbnails, labels.size, "thumbnails")
        payload["thumbnails"] = _array(thumbs, "uint8")
    return payload


def checkpoint_payload(checkpoint: Checkpoint) -> dict[str, Any]:
    """Epoch, step (or None), scalars, predictions (uint16) and confidence (uint8 0..255)."""
    data: dict[str, Any] = {
        "index": int(checkpoint.index),
        "epoch": int(checkpoint.epoch),
        "step": None if checkpoint.step is None else int(checkpoint.step),
        "scalars": {k: finite_or_none(v) for k, v in checkpoint.scalars.items()},
        "pred": None,
        "conf": None,
    }
    if checkpoint.logits is not None:
        logits = checkpoint.logits.astype(np.float64)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        confidence = np.nan_to_num(shifted.max(axis=1) / shifted.sum(axis=1), nan=0.0)
        data["pred"] = _array(logits.argmax(axis=1), "uint16")
        data["conf"] = _array(np.rint(confidence * 255), "uint8")
    return data


def frame_payload(frame: Frame) -> dict[str, Any]:
    """Coordinates, point bounds, background raster, metrics and alerts of one frame.

    Non-finite coordinates stay in ``xy`` (the browser flags those points); ``bounds`` cover the
    finite points only (``None`` when there are none) and ``missing`` counts the others.
    Non-finite metrics become ``None``, and a background whose extent is not finite is dropped,
    so the JSON never holds ``NaN`` (which no browser parses).
    """
    emb = frame.embedding
    finite = np.isfinite(emb).all(axis=1)
    bounds = None
    if finite.any():
        lo, hi = emb[finite].min(axis=0), emb[finite].max(axis=0)
        bounds = [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])]
    data: dict[str, Any] = {
        "method": frame.method,
        "index": int(frame.index),
        "epoch": int(frame.epoch),
        "xy": _array(emb, "float32"),
        "bounds": bounds,
        "missing": int((~finite).sum()),
        "background": None,
        "metrics": {k: finite_or_none(v) for k, v in frame.metrics.items()},
        "alerts": [jsonable(a) for a in frame.alerts],
    }
    bg = frame.background
    if bg is not None and np.isfinite(np.asarray(bg.extent, dtype=np.float64)).all():
        class_dtype = "uint8" if int(bg.classes.max(initial=0)) < 256 else "uint16"
        data["background"] = {
            "classes": _array(bg.classes, class_dtype),
            "alpha": _array(bg.alpha, "uint8"),
            "extent": [float(v) for v in bg.extent],
        }
    return data


def finite_or_none(value: Any) -> float | None:
    """``float(value)``, or ``None`` for NaN/±inf (JSON has no spelling for them)."""
    number = float(value)
    return number if np.isfinite(number) else None


def widget_from_store(store: RunStore) -> SentryCamWidget:
    """A widget holding every stored checkpoint and frame of a run."""
    methods = store.methods()
    frames = {m: store.frames(m) for m in methods}
    inverse = {m: any(f.background is not None for f in fs) for m, fs in frames.items()}
    widget = SentryCamWidget(
        store.labels,
        inverse or {"sentrycam": True},
        class_names=store.class_names,
        thumbnails=store.images,
    )
    add_stored(widget, store, frames=frames)
    widget.set_status({"closed": True})
    return widget


def add_stored(
    widget: SentryCamWidget,
    store: RunStore,
    before: int | None = None,
    *,
    frames: dict[str, list[Frame]] | None = None,
) -> None:
    """Send ``store``'s checkpoints and frames (those with index < ``before``) to ``widget``.

    Parameters
    ----------
    widget
        The widget (of the run's probe set).
    store
        The run.
    before
        Only entries with a smaller index (None: all).
    frames
        The frames per method when already loaded (default: every method's stored frames).
    """
    if frames is None:
        frames = {m: store.frames(m) for m in store.methods() if m in widget.methods}
    for checkpoint in store.checkpoints():
        if before is None or checkpoint.index < before:
            widget.add_checkpoint(checkpoint)
    for method_frames in frames.values():
        for frame in method_frames:
            if before is None or frame.index < before:
                widget.add_frame(frame)
