"""A failing run's HTML export in Chromium: the digits CNN trained normally, then with its
learning rate raised ×100 (the instability case study's failing run), recorded, projected with
SentryCam and audited. The export shows its alerts on the timeline with their explanations,
the validation loss, and every frame fitted to its points. The screenshot is the README's."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sentrycam_widget.benchmarking import case_studies as cs
from sentrycam_widget.html_export import export_run_html

pytestmark = [pytest.mark.slow, pytest.mark.browser]

RUN = cs.InstabilitySettings(epochs=18, change_epoch=11, jumps=(100.0,), ramp=None)
NEXT_PAINT = "new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"


def test_failing_run_export_shows_alerts_on_the_timeline(tmp_path, page):
    from jupyter_servers import REPO

    (spec,) = cs.instability_specs(RUN)
    assert spec.name == "jump_x100"
    trace = cs.record_and_audit(spec, tmp_path / "run")
    assert trace["alerts"], "the failing run should raise alerts"
    path = export_run_html(
        tmp_path / "run", tmp_path / "failing.html", title="jump ×100 at epoch 11"
    )
    page.set_viewport_size({"width": 760, "height": 900})
    page.goto(path.as_uri())
    page.wait_for_function("window.sentrycamView !== undefined", timeout=60_000)
    marks = page.locator(".sc-metrics .sc-alert")
    assert marks.count() >= 1
    assert all(m.get_attribute("title") for m in marks.all())
    assert page.locator(".sc-readout").text_content().startswith("validation loss ")
    # every frame is fitted to its points: the points cover most of the plot, never one corner
    collapsed = 0
    for position in range(page.evaluate("window.sentrycamView.frameCount()")):
        page.evaluate(f"window.sentrycamView.setPosition({position})")
        page.evaluate(NEXT_PAINT)
        spread = page.evaluate(
            """() => { const v = window.sentrycamView; const f = v.frameAt();
            const xs = Array.from({ length: f.n }, (_, i) => v.plot.toClient(f.xy[2 * i], f.xy[2 * i + 1]).x).filter(Number.isFinite);
            return Math.max(...xs) - Math.min(...xs); }"""
        )
        if spread < 300:  # a collapsed frame: its one spot is in the middle, and said so
            assert spread == 0, f"checkpoint {position}: points span only {spread:.0f} px"
            assert "points lie on one spot (collapsed)" in page.locator(".sc-note").text_content()
            spot = page.evaluate(
                """() => { const v = window.sentrycamView; const f = v.frameAt();
                return v.plot.toClient(f.xy[0], f.xy[1]); }"""
            )
            box = page.locator(".sc-plot canvas").first.bounding_box()
            assert 0.3 < (spot["x"] - box["x"]) / box["width"] < 0.7
            assert 0.3 < (spot["y"] - box["y"]) / box["height"] < 0.7
            collapsed += 1
    assert collapsed < page.evaluate("window.sentrycamView.frameCount()")
    marks.first.click()
    page.evaluate(NEXT_PAINT)
    artifacts = REPO / "artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "failing_run_export.png"
    page.locator(".sc-root").screenshot(path=str(shot))
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # a picture, not a blank page
    assert page.errors == []
