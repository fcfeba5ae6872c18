"""The exported HTML file in real Chromium: scrubs, toggles and hovers with no kernel and no network."""

from __future__ import annotations

import json

import numpy as np
import pytest
from widget_synthetic import synthetic_checkpoint, synthetic_frame

from sentrycam_widget.html_export import export_html, saved_state
from sentrycam_widget.widget import SentryCamWidget

pytestmark = pytest.mark.browser

N = 150
LABELS = np.arange(N) % 3
_NEXT_PAINT = "new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"


def _run_widget() -> SentryCamWidget:
    widget = SentryCamWidget(
        LABELS,
        {"sentrycam": True, "umap": False},
        thumbnails=np.arange(N * 64, dtype=np.uint64).reshape(N, 8, 8).astype(np.uint8),
    )
    for i in range(4):
        widget.add_checkpoint(synthetic_checkpoint(i, LABELS))
        widget.add_frame(synthetic_frame("sentrycam", i, N))
    widget.add_frame(synthetic_frame("umap", 3, N, background=False))
    return widget


def test_saved_state_holds_every_frame_with_its_buffers():
    widget = _run_widget()
    saved = saved_state(widget)
    assert len(saved["models"]) == 1 + 4 + 5
    root = saved["models"][saved["root"]]["state"]
    assert "_bokeh_js" not in root and len(root["frames"]) == 5
    child_id = root["frames"][0].removeprefix("anywidget:")
    paths = [b["path"] for b in saved["models"][child_id]["buffers"]]
    assert ["data", "xy", "buffer"] in paths


def test_exported_html_scrubs_toggles_and_hovers_offline(tmp_path, page):
    path = export_html(_run_widget(), tmp_path / "run.html", title="test run")
    page.goto(path.as_uri())
    page.wait_for_function("window.sentrycamView !== undefined", timeout=30000)
    plot = page.locator(".sc-plot")
    epoch = page.locator(".sc-epoch")
    assert epoch.text_content() == "epoch 30 · 4/4"
    before = plot.screenshot()

    page.locator(".sc-slider").focus()
    page.keyboard.press("ArrowLeft")
    assert epoch.text_content() == "epoch 20 · 3/4"
    page.evaluate(_NEXT_PAINT)
    assert plot.screenshot() != before

    marker = page.locator(".sc-alert")
    assert marker.count() == 1
    assert "intra-class variance rose" in marker.get_attribute("title")

    umap = page.locator('.sc-method[data-method="umap"]')
    assert "sc-pending" in umap.get_attribute("class")
    umap.click()
    assert "pending" in page.locator(".sc-overlay").text_content()
    page.locator(".sc-slider").focus()
    page.keyboard.press("End")
    assert page.locator(".sc-overlay").is_hidden()
    assert "no background: UMAP has no inverse mapping" in page.locator(".sc-note").text_content()

    page.evaluate(_NEXT_PAINT)
    target = page.evaluate(
        """() => { const v = window.sentrycamView; const f = v.frameAt();
        return v.plot.toClient(f.xy[14], f.xy[15]); }"""
    )
    page.mouse.move(target["x"], target["y"])
    tooltip = page.locator(".sc-tooltip")
    tooltip.wait_for(state="visible", timeout=5000)
    assert "sample 7" in tooltip.text_content()
    assert "label 1" in tooltip.text_content()
    assert tooltip.locator("canvas.sc-thumb").count() == 1

    page.mouse.click(target["x"], target["y"])
    assert page.evaluate("window.sentrycamView.selection") == [7]

    assert page.errors == []
    assert page.requests, "the page itself should have been requested"
    assert all(u.startswith(("file://", "data:")) for u in page.requests), page.requests


@pytest.mark.slow
def test_a_nan_validation_loss_from_the_monitor_leaves_the_export_readable(tmp_path, page):
    """Issue 11: ``mon.checkpoint(e, val_loss=nan)`` used to give an HTML file that rendered
    blank (its JSON held NaN)."""
    from sentrycam_widget import demo
    from sentrycam_widget.monitor import Monitor

    data = demo.digits_data()
    probe = (data.x_probe[::6], data.y_probe[::6])
    model = demo.make_model(0, demo.DigitsCNN)
    fast = {"sentrycam": {"cold_steps": 60, "warm_steps": 20, "resolution": 40}}
    with Monitor(model, probe=probe, run_dir=tmp_path / "run", method_options=fast) as mon:
        for epoch, loss in enumerate([0.9, float("nan"), 0.7]):
            mon.checkpoint(epoch, val_loss=loss)
    path = mon.save_html(tmp_path / "nan.html")
    state = path.read_text().split('id="sentrycam-state">')[1].split("</script>")[0]

    def no_nan(constant):
        raise AssertionError(f"the exported state holds {constant}")

    json.loads(state, parse_constant=no_nan)
    page.goto(path.as_uri())
    page.wait_for_function("window.sentrycamView !== undefined", timeout=30000)
    assert page.locator(".sc-epoch").text_content() == "epoch 2 · 3/3"
    assert page.locator(".sc-readout").text_content().startswith("validation loss 0.700")
    page.evaluate("window.sentrycamView.setPosition(1)")
    assert page.locator(".sc-readout").text_content().startswith("validation loss missing")
    assert page.locator(".sc-missing").count() == 1
    assert page.errors == []
