"""Frame-switch time in headless Chromium and bytes per frame on the wire.

Builds runs of N = 10,000, 50,000 and 100,000 points (10 classes, a 200×200 decision raster per frame,
points drifting between checkpoints), sends them through the real widget with a recording comm
(bytes per frame = everything the kernel publishes for one frame: the child model's JSON and
binary buffers plus the parent's update), exports the standalone HTML and times, in Debian's
chromium with ``performance.now()``, one frame switch = the view's update for the new
checkpoint (points, colours, background, ranges) plus a synchronous Bokeh repaint. Back to
back (no idle time between switches, so nothing is prepared ahead): each frame is visited once
cold (first decode) and then three times more. Paced, on a fresh page: one switch to the next
checkpoint every 33 ms (a held arrow key, a steady drag), so the view's idle-time prefetch of
neighbouring frames can run between switches, as it does for a person scrubbing. Besides wall
time, the CPU time Chromium's processes use per back-to-back switch is reported: on a machine
shared with other jobs it is the cost of a switch that their load does not inflate.

``--backend webgl`` draws the same figure with Bokeh's WebGL backend (``bokeh-gl`` loaded next
to BokehJS; Bokeh falls back to canvas where the browser has no WebGL) for comparison.

    python benchmarks/widget_switch_time.py --sizes 10000 50000 100000 --frames 8 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
from pathlib import Path

import comm
import numpy as np
import psutil
from comm.base_comm import BaseComm
from widget_runs import CHROMIUM_ARGS, N_CLASSES, RESOLUTION, synthetic_run

import sentrycam_widget.html_export as html_export
from sentrycam_widget.widget import SentryCamWidget

PACE_MS = 33


class _CountingComm(BaseComm):
    sent_bytes = 0

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        _CountingComm.sent_bytes += len(json.dumps(data, default=str)) + sum(
            memoryview(b).nbytes for b in buffers or []
        )


@contextlib.contextmanager
def _webgl_figure():
    """Build the widget's figure with output_backend="webgl" and put bokeh-gl on the page."""
    import bokeh.plotting

    figure, bokeh_js = bokeh.plotting.figure, html_export.bokeh_js
    gl = Path(bokeh.__file__).parent / "server" / "static" / "js" / "bokeh-gl.min.js"
    bokeh.plotting.figure = lambda *a, **kw: figure(*a, **{**kw, "output_backend": "webgl"})
    html_export.bokeh_js = lambda: bokeh_js() + "\n" + gl.read_text(encoding="utf-8")
    try:
        yield
    finally:
        bokeh.plotting.figure, html_export.bokeh_js = figure, bokeh_js


def _measure(n: int, frames: int, out_dir: Path, backend: str) -> dict:
    original = comm.create_comm
    comm.create_comm = lambda **kw: _CountingComm(**kw)
    try:
        with _webgl_figure() if backend == "webgl" else contextlib.nullcontext():
            widget = SentryCamWidget(np.arange(n) % N_CLASSES, {"sentrycam": True})
        per_frame = []
        for checkpoint, frame in synthetic_run(n, frames):
            _CountingComm.sent_bytes = 0
            widget.add_checkpoint(checkpoint)
            ckpt_bytes = _CountingComm.sent_bytes
            _CountingComm.sent_bytes = 0
            widget.add_frame(frame)
            per_frame.append((ckpt_bytes, _CountingComm.sent_bytes))
    finally:
        comm.create_comm = original
    with _webgl_figure() if backend == "webgl" else contextlib.nullcontext():
        path = html_export.export_html(widget, out_dir / f"switch_{n}.html")
    times = _time_switches(path, frames)
    cold, warm, paced = times["cold"], times["warm"], times["paced"]
    return {
        "n_points": n,
        "frames": frames,
        "backend": times["backend"],
        "bytes_per_frame": statistics.median(b for _, b in per_frame),
        "bytes_per_checkpoint": statistics.median(b for b, _ in per_frame),
        "coordinates_bytes": n * 8,
        "raster_bytes": 2 * RESOLUTION * RESOLUTION,
        "switch_ms_cold_median": statistics.median(cold),
        "switch_ms_cold_max": max(cold),
        "switch_ms_warm_median": statistics.median(warm),
        "switch_ms_warm_max": max(warm),
        # CPU time of Chromium's processes per back-to-back switch: robust to other jobs
        "switch_cpu_ms_cold": times["cold_cpu_ms"],
        "switch_cpu_ms_warm": times["warm_cpu_ms"],
        # the first switch of the paced pass lands on a page that has prepared nothing yet
        "switch_ms_paced_median": statistics.median(paced[1:]),
        "switch_ms_paced_max": max(paced[1:]),
        "switch_ms_paced_first": paced[0],
        "paced_switches_drawing_a_new_raster": times["paced_rasterised"],
        "html_bytes": path.stat().st_size,
    }


def _chromium_cpu_s() -> float:
    """CPU seconds used so far by this process's Chromium processes (all of them: renderer,
    GPU, browser). Per switch, it is the work a switch costs whatever else runs on the cores."""
    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            if "chrom" in proc.name():
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def _time_switches(path: Path, frames: int) -> dict:
    from playwright.sync_api import sync_playwright

    timer = """const time = (v, i) => { const t0 = performance.now(); v.setPosition(i); v.plot.repaint();
                                  return performance.now() - t0; };"""
    cold_pass = f"""(frames) => {{ {timer}
        const v = window.sentrycamView;
        return Array.from({{ length: frames }}, (_, i) => time(v, i));
    }}"""
    warm_pass = f"""(frames) => {{ {timer}
        const v = window.sentrycamView;
        return Array.from({{ length: 3 * frames }}, (_, k) => time(v, (k + 1) % frames));
    }}"""
    paced = f"""async ([frames, pace]) => {{ {timer}
        const v = window.sentrycamView;
        const sleep = () => new Promise((resolve) => setTimeout(resolve, pace));
        const out = [];
        let rasterised = 0;
        for (let i = 0; i < frames; i++) {{
            await sleep();
            const before = v.plot.rasterStats.made;
            out.push(time(v, i));
            if (i > 0) rasterised += v.plot.rasterStats.made - before;
        }}
        return [out, rasterised];
    }}"""

    def open_page(browser):
        page = browser.new_page()
        page.goto(path.as_uri())
        page.wait_for_function("window.sentrycamView !== undefined", timeout=300_000)
        return page

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = open_page(browser)
        backend = page.evaluate(
            "window.sentrycamView.plot.plotView.canvas_view.webgl ? 'webgl' : 'canvas'"
        )
        cpu = _chromium_cpu_s()
        cold = page.evaluate(cold_pass, frames)
        cold_cpu = (_chromium_cpu_s() - cpu) * 1000 / frames
        cpu = _chromium_cpu_s()
        warm = page.evaluate(warm_pass, frames)
        warm_cpu = (_chromium_cpu_s() - cpu) * 1000 / len(warm)
        page.close()
        paced_ms, rasterised = open_page(browser).evaluate(paced, [frames, PACE_MS])
        browser.close()
    return {
        "cold": cold,
        "warm": warm,
        "cold_cpu_ms": cold_cpu,
        "warm_cpu_ms": warm_cpu,
        "paced": paced_ms,
        "paced_rasterised": rasterised,
        "backend": backend,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--backend", choices=["canvas", "webgl"], default="canvas")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [_measure(n, args.frames, Path(tmp), args.backend) for n in args.sizes]
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
