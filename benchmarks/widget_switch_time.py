"""Frame-switch time in headless Chromium and bytes per frame on the wire.

Builds runs of N = 10,000 and 50,000 points (10 classes, a 200×200 decision raster per frame,
points drifting between checkpoints), sends them through the real widget with a recording comm
(bytes per frame = everything the kernel publishes for one frame: the child model's JSON and
binary buffers plus the parent's update), exports the standalone HTML and times, in Debian's
chromium with ``performance.now()``, one frame switch = the view's update for the new
checkpoint (points, colours, background, ranges) plus a synchronous Bokeh repaint. Each frame
is visited once cold (first decode of its raster) and then again warm.

    python benchmarks/widget_switch_time.py --sizes 10000 50000 --frames 8 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import comm
import numpy as np
from comm.base_comm import BaseComm
from widget_runs import CHROMIUM_ARGS, N_CLASSES, RESOLUTION, synthetic_run

from sentrycam_widget.html_export import export_html
from sentrycam_widget.widget import SentryCamWidget


class _CountingComm(BaseComm):
    sent_bytes = 0

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        _CountingComm.sent_bytes += len(json.dumps(data, default=str)) + sum(
            memoryview(b).nbytes for b in buffers or []
        )


def _measure(n: int, frames: int, out_dir: Path) -> dict:
    original = comm.create_comm
    comm.create_comm = lambda **kw: _CountingComm(**kw)
    try:
        widget = SentryCamWidget(np.zeros(n, int) + np.arange(n) % N_CLASSES, {"sentrycam": True})
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
    path = export_html(widget, out_dir / f"switch_{n}.html")
    cold, warm = _time_switches(path, frames)
    return {
        "n_points": n,
        "frames": frames,
        "bytes_per_frame": statistics.median(b for _, b in per_frame),
        "bytes_per_checkpoint": statistics.median(b for b, _ in per_frame),
        "coordinates_bytes": n * 8,
        "raster_bytes": 2 * RESOLUTION * RESOLUTION,
        "switch_ms_cold_median": statistics.median(cold),
        "switch_ms_warm_median": statistics.median(warm),
        "switch_ms_warm_max": max(warm),
        "html_bytes": path.stat().st_size,
    }


def _time_switches(path: Path, frames: int) -> tuple[list[float], list[float]]:
    from playwright.sync_api import sync_playwright

    script = """async (frames) => {
        const v = window.sentrycamView;
        const time = (i) => { const t0 = performance.now(); v.setPosition(i); v.plot.repaint();
                              return performance.now() - t0; };
        const cold = [], warm = [];
        for (let i = 0; i < frames; i++) cold.push(time(i));
        for (let round = 0; round < 3; round++)
            for (let i = 0; i < frames; i++) warm.push(time((i + 1) % frames));
        return [cold, warm];
    }"""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(path.as_uri())
        page.wait_for_function("window.sentrycamView !== undefined", timeout=120_000)
        cold, warm = page.evaluate(script, frames)
        browser.close()
    return cold, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [_measure(n, args.frames, Path(tmp)) for n in args.sizes]
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
