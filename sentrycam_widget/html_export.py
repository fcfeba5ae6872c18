"""One self-contained, offline HTML file from a widget: every frame, no kernel, no network.

The page inlines BokehJS (from the installed ``bokeh`` package), the widget's own ES module (as
a ``data:`` URL import) and its CSS, plus the saved state of the widget and of its child models,
binary buffers base64-encoded at their widget-protocol paths. The same JS view that runs in
Jupyter renders it (``renderStandalone`` in js/src/index.js).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import ipywidgets
from ipywidgets.widgets.widget import _remove_buffers

from .store import RunStore
from .widget import _STATIC, SentryCamWidget, bokeh_js, widget_from_store

_SKIP = {"_esm", "_css", "_bokeh", "_dom_classes", "layout", "tabbable", "tooltip"}


def saved_state(widget: SentryCamWidget) -> dict[str, Any]:
    """``{root, models: {id: {state, buffers: [{path, data(base64)}]}}}`` of widget + children."""
    models = {widget.model_id: _model_state(widget)}
    for child in widget.payload_models():
        models[child.model_id] = _model_state(child)
    return {"root": widget.model_id, "models": models}


def _model_state(model: ipywidgets.Widget) -> dict[str, Any]:
    state = {k: v for k, v in model.get_state().items() if k not in _SKIP}
    state, paths, buffers = _remove_buffers(state)
    encoded = [
        {"path": path, "data": base64.b64encode(bytes(buf)).decode("ascii")}
        for path, buf in zip(paths, buffers, strict=True)
    ]
    return {"state": state, "buffers": encoded}


def export_html(widget: SentryCamWidget, path: str | Path, title: str = "sentrycam run") -> Path:
    """Write the standalone HTML file to ``path`` and return it."""
    path = Path(path)
    module = base64.b64encode((_STATIC / "widget.js").read_bytes()).decode("ascii")
    state = json.dumps(saved_state(widget), separators=(",", ":"), allow_nan=False).replace(
        "</", "<\\/"
    )
    css = (_STATIC / "widget.css").read_text(encoding="utf-8")
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{css}
body {{ margin: 16px; }}</style>
<script>{_script_safe(bokeh_js())}</script>
</head>
<body>
<h3>{html.escape(title)}</h3>
<div id="sentrycam-root"></div>
<script type="application/json" id="sentrycam-state">{state}</script>
<script type="module">
import {{ renderStandalone }} from "data:text/javascript;base64,{module}";
const holder = document.getElementById("sentrycam-state");
const saved = JSON.parse(holder.textContent);
holder.remove();
window.sentrycamView = await renderStandalone(document.getElementById("sentrycam-root"), saved);
</script>
</body>
</html>
"""
    path.write_text(page, encoding="utf-8")
    return path


def _script_safe(source: str) -> str:
    """JS source safe to inline in a <script> element."""
    return source.replace("</script", "<\\/script")


def export_run_html(run_dir: str | Path, path: str | Path, title: str | None = None) -> Path:
    """The standalone HTML file of a recorded run (``python -m sentrycam_widget export --html``).

    Parameters
    ----------
    run_dir
        The run directory.
    path
        The ``.html`` file to write.
    title
        The page title (default ``sentrycam run <run directory name>``).

    Returns
    -------
    Path
        The file written; it scrubs every method's frames in any browser, offline.
    """
    store = RunStore.open(run_dir)
    return export_html(widget_from_store(store), path, title or f"sentrycam run {store.name}")
