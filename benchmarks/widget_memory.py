"""Widget memory on a long run: the browser (Chromium heap via CDP) and the kernel-side widget.

Builds a synthetic run (default 200 checkpoints × 50,000 points, a 200×200 decision raster per
frame; generated in seconds), exports the standalone HTML (the same view code as in Jupyter) and, in Debian's
chromium, scrubs through every frame once while measuring, after a forced garbage collection:
the JS heap plus array-buffer backing stores (``Runtime.getHeapUsage``) and the renderer
processes' RSS. It does so twice: with the default window of decoded frames
(``SentryCamWidget.frame_window``) and with an unbounded one (every frame kept decoded, what the
view did before the window). The kernel side is the bytes the widget's payload models hold
(every frame's coordinates, raster, predictions: they are the saved state), counted exactly.
Measured at the size asked for, not extrapolated.

    python benchmarks/widget_memory.py --frames 200 --points 50000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import psutil
from ipywidgets.widgets.widget import _remove_buffers
from widget_runs import CHROMIUM_ARGS, N_CLASSES, synthetic_run

from sentrycam_widget.html_export import export_html
from sentrycam_widget.widget import FRAME_WINDOW, SentryCamWidget

MB = 2**20


def _payload_bytes(payload: dict) -> int:
    _, _, buffers = _remove_buffers({"data": payload})
    return sum(memoryview(b).nbytes for b in buffers)


def _build(frames: int, n: int) -> tuple[SentryCamWidget, int]:
    labels = None
    widget = None
    held = 0
    for checkpoint, frame in synthetic_run(n, frames):
        if widget is None:
            labels = checkpoint.labels
            widget = SentryCamWidget(labels, {"sentrycam": True})
        widget.add_checkpoint(checkpoint)
        widget.add_frame(frame)
    for child in widget.payload_models():
        held += _payload_bytes(child.data)
    return widget, held


def _renderer_rss() -> int:
    total = 0
    for proc in psutil.Process().children(recursive=True):
        try:
            if "--type=renderer" in " ".join(proc.cmdline()):
                total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def _browser(path: Path, frames: int) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        cdp = page.context.new_cdp_session(page)
        page.goto(path.as_uri())
        page.wait_for_function("window.sentrycamView !== undefined", timeout=600_000)

        def measure() -> dict:
            cdp.send("HeapProfiler.collectGarbage")
            usage = cdp.send("Runtime.getHeapUsage")
            if "backingStorageSize" not in usage:
                raise RuntimeError(f"this Chromium reports no array-buffer sizes: {usage}")
            heap = usage["usedSize"] + usage.get("backingStorageSize", 0)
            return {"heap_mb": heap / MB, "renderer_rss_mb": _renderer_rss() / MB}

        loaded = measure()
        page.evaluate(
            """(frames) => { const v = window.sentrycamView;
            for (let i = 0; i < frames; i++) { v.setPosition(i); v.plot.repaint(); } }""",
            frames,
        )
        scrubbed = measure()
        decoded = page.evaluate("window.sentrycamView.decodedCount")
        rasters = page.evaluate("window.sentrycamView.plot.rasterStats.kept")
        browser.close()
    return {
        "loaded": loaded,
        "scrubbed": scrubbed,
        "decoded_frames": decoded,
        "point_rasters": rasters,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--points", type=int, default=50_000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    widget, kernel_bytes = _build(args.frames, args.points)
    result: dict = {
        "frames": args.frames,
        "points": args.points,
        "classes": N_CLASSES,
        "kernel_payload_mb": kernel_bytes / MB,
    }
    with tempfile.TemporaryDirectory() as tmp:
        # the page with one frame: BokehJS, the view, the probe set (what does not grow)
        one, _ = _build(1, args.points)
        result["one_frame_page"] = _browser(export_html(one, Path(tmp) / "memory_one.html"), 1)[
            "loaded"
        ]
        for name, window in (("window", FRAME_WINDOW), ("unbounded", 10**9)):
            widget.frame_window = window
            path = export_html(widget, Path(tmp) / f"memory_{name}.html")
            run = _browser(path, args.frames)
            run["frame_window"] = min(window, args.frames)
            run["html_mb"] = path.stat().st_size / MB
            result[name] = run
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
