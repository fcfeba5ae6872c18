"""The widget's visible features in real Chromium, checked on the plot's pixels and the DOM.

Legend (hide / highlight a class), fitting the view to the points (also for a diverged frame,
and the "fit" control after a pan), the metrics timeline (text, alert markers, click to scrub),
box and lasso selection, NaN/inf values, and the bounded window of decoded frames. Each runs on
an exported HTML file, the same view code as in Jupyter.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from widget_synthetic import synthetic_checkpoint, synthetic_frame

from sentrycam_widget.html_export import export_html
from sentrycam_widget.records import Background, Checkpoint, Frame
from sentrycam_widget.render import palette
from sentrycam_widget.widget import SentryCamWidget

pytestmark = pytest.mark.browser

N = 150
LABELS = np.arange(N) % 3
COLOURS = palette(3)
NEXT_PAINT = "new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
VIEW = "window.sentrycamView"
TRAIL = (34, 34, 34)  # trajectory colour (#222222, widget._plot_item)


def _plain_checkpoint(index: int, scalars: dict | None = None) -> Checkpoint:
    """A checkpoint without logits: every point is a dot in its label's colour."""
    features = np.zeros((N, 4), np.float32)
    return Checkpoint(index, 10 * index, features, LABELS, scalars=scalars or {})


def _widget(frames: int = 4) -> SentryCamWidget:
    widget = SentryCamWidget(LABELS, {"sentrycam": True})
    for i in range(frames):
        widget.add_checkpoint(_plain_checkpoint(i, {"val_loss": 1.0 / (i + 1)}))
        widget.add_frame(synthetic_frame("sentrycam", i, N))
    return widget


def _open(page, widget, tmp_path, name="run.html"):
    page.goto(export_html(widget, tmp_path / name).as_uri())
    page.wait_for_function(f"{VIEW} !== undefined", timeout=30000)
    page.evaluate(NEXT_PAINT)


def _pixels(page) -> np.ndarray:
    page.evaluate(NEXT_PAINT)
    shot = page.locator(".sc-plot canvas").first.screenshot()
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)


def _count(pixels: np.ndarray, rgb) -> int:
    return int(np.all(pixels == np.asarray(rgb), axis=-1).sum())


def _faded(rgb) -> tuple[int, ...]:
    return tuple(round(v + (255 - v) * 0.75) for v in rgb)


def test_legend_hides_and_highlights_classes_in_the_picture(tmp_path, page):
    _open(page, _widget(), tmp_path)
    names = page.locator(".sc-class").all_text_contents()
    assert names == ["0 (50)", "1 (50)", "2 (50)"]
    before = _pixels(page)
    orange, blue = COLOURS[1], COLOURS[0]
    assert _count(before, orange) > 100 and _count(before, blue) > 100

    page.locator('.sc-class[data-class="1"]').click()
    hidden = _pixels(page)
    assert _count(hidden, orange) == 0
    assert _count(hidden, blue) >= _count(before, blue)
    page.locator('.sc-class[data-class="1"]').click()
    assert np.array_equal(_pixels(page), before)

    page.locator('.sc-class[data-class="0"]').click(modifiers=["Shift"])
    highlighted = _pixels(page)
    assert _count(highlighted, orange) == 0
    assert _count(highlighted, _faded(orange)) > 100
    assert _count(highlighted, blue) > 100
    assert page.errors == []


def test_a_diverged_frame_is_fitted_and_fit_comes_back_after_a_pan(tmp_path, page):
    widget = SentryCamWidget(LABELS, {"sentrycam": True})
    widget.add_checkpoint(_plain_checkpoint(0))
    rng = np.random.default_rng(0)
    emb = (100 + rng.random((N, 2))).astype(np.float32)
    # the head's raster spans ±10,000 while the points sit in one unit square
    huge = Background(np.zeros((20, 20)), np.full((20, 20), 200), (-1e4, 1e4, -1e4, 1e4))
    widget.add_frame(Frame("sentrycam", 0, 0, emb, background=huge))
    _open(page, widget, tmp_path)
    fitted = _pixels(page)
    drawn = np.zeros(fitted.shape[:2], bool)
    for rgb in COLOURS:
        drawn |= np.all(fitted == rgb, axis=-1)
    rows, cols = np.nonzero(drawn)
    height, width = drawn.shape
    assert cols.max() - cols.min() > 0.7 * width
    assert rows.max() - rows.min() > 0.7 * height

    box = page.locator(".sc-plot canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 120, cy + 60, steps=5)
    page.mouse.up()
    assert "sc-active" not in page.locator(".sc-fit").get_attribute("class")
    assert not np.array_equal(_pixels(page), fitted)
    page.locator(".bk-tool-icon-reset").click()  # Bokeh's reset returns to the fitted view
    page.mouse.move(0, 0)
    # the plot area (the toolbar on the right shades the clicked tool)
    assert np.array_equal(_pixels(page)[:, :-40], fitted[:, :-40])
    _drag(page, [(cx, cy), (cx + 120, cy + 60)])
    assert not np.array_equal(_pixels(page), fitted)
    page.locator(".sc-fit").click()
    assert "sc-active" in page.locator(".sc-fit").get_attribute("class")
    assert np.array_equal(_pixels(page), fitted)


def test_metrics_timeline_reads_validation_loss_and_scrubs_on_click(tmp_path, page):
    widget = SentryCamWidget(LABELS, {"sentrycam": True})
    for i in range(4):
        checkpoint = synthetic_checkpoint(i, LABELS)
        checkpoint.scalars["lr"] = 0.01 * (i + 1) if i < 2 else 0.01
        widget.add_checkpoint(checkpoint)
        widget.add_frame(synthetic_frame("sentrycam", i, N))
    _open(page, widget, tmp_path)
    readout = page.locator(".sc-readout")
    assert readout.text_content() == "validation loss 0.250 · T(15) 0.900 · PPR 0.950"
    alert = page.locator(".sc-metrics .sc-alert")
    assert alert.count() == 1 and alert.get_attribute("title") == "V: intra-class variance rose"
    assert page.locator(".sc-line-scalar").get_attribute("d").count("L") == 3

    chart = page.locator(".sc-chart-box").bounding_box()
    page.mouse.click(chart["x"] + 2, chart["y"] + chart["height"] / 2)
    assert page.locator(".sc-epoch").text_content() == "epoch 0 · 1/4"
    assert readout.text_content().startswith("validation loss 1.000")
    alert.click()
    assert page.locator(".sc-epoch").text_content() == "epoch 10 · 2/4"
    assert page.locator(".sc-slider").input_value() == "1"
    loss_line = page.locator(".sc-line-scalar").get_attribute("d")
    page.locator(".sc-scalar").select_option("lr")  # any recorded scalar can be drawn
    assert readout.text_content().startswith("lr 0.020")  # at checkpoint 1
    assert page.locator(".sc-line-scalar").get_attribute("d") != loss_line
    page.locator(".sc-scalar").select_option("val_loss")
    shot = page.locator(".sc-chart-box").screenshot()
    chart_pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)
    assert (chart_pixels.sum(axis=-1) < 300).sum() > 50  # the loss line is drawn


def _drag(page, points):
    page.mouse.move(*points[0])
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*p, steps=3)
    page.mouse.up()


def test_box_and_lasso_select_points_and_fade_the_rest(tmp_path, page):
    _open(page, _widget(), tmp_path)
    page.locator('.sc-mode[data-mode="box"]').click()
    clients = page.evaluate(
        f"""() => {{ const v = {VIEW}; const f = v.frameAt();
        return Array.from({{ length: f.n }}, (_, i) => v.plot.toClient(f.xy[2 * i], f.xy[2 * i + 1])); }}"""
    )
    xs = np.array([c["x"] for c in clients])
    ys = np.array([c["y"] for c in clients])
    x0, x1 = np.percentile(xs, [30, 70])
    y0, y1 = np.percentile(ys, [30, 70])
    _drag(page, [(x0, y0), (x1, y1)])
    inside = np.nonzero((xs > x0 + 1) & (xs < x1 - 1) & (ys > y0 + 1) & (ys < y1 - 1))[0]
    border = np.nonzero((xs > x0 - 1) & (xs < x1 + 1) & (ys > y0 - 1) & (ys < y1 + 1))[0]
    selected = set(page.evaluate(f"{VIEW}.selection"))
    assert set(inside) <= selected <= set(border) and len(selected) > 5
    assert page.locator(".sc-selection").text_content().startswith(f"{len(selected)} selected")
    pixels = _pixels(page)
    assert _count(pixels, _faded(COLOURS[0])) > 50
    assert _count(pixels, TRAIL) > 20  # the selection's trajectories through the checkpoints

    page.locator('.sc-mode[data-mode="lasso"]').click()
    triangle = [(x0, y1), (x1, y1), ((x0 + x1) / 2, y0), (x0, y1)]
    _drag(page, triangle)
    lasso = set(page.evaluate(f"{VIEW}.selection"))
    assert lasso and lasso != selected
    page.locator(".sc-clear").click()
    assert page.evaluate(f"{VIEW}.selection") == []
    cleared = _pixels(page)
    assert _count(cleared, _faded(COLOURS[0])) == 0
    assert _count(cleared, TRAIL) == 0


def test_nan_values_never_blank_the_view_and_are_marked(tmp_path, page):
    widget = _widget(frames=3)
    widget.add_checkpoint(_plain_checkpoint(3, {"val_loss": float("nan")}))
    frame = synthetic_frame("sentrycam", 3, N)
    frame.embedding[[0, 1, 2]] = [[np.nan, 0], [np.inf, 0], [0, -np.inf]]
    frame.metrics["trustworthiness"] = float("nan")
    widget.add_frame(frame)
    _open(page, widget, tmp_path)
    assert page.errors == []
    assert page.locator(".sc-epoch").text_content() == "epoch 30 · 4/4"
    assert "3 points have no coordinates (NaN/inf)" in page.locator(".sc-note").text_content()
    assert (
        page.locator(".sc-readout")
        .text_content()
        .startswith("validation loss missing · T(15) missing · PPR 0.950")
    )
    missing = page.locator(".sc-missing")
    assert missing.count() == 1 and "validation loss is missing" in missing.get_attribute("title")
    pixels = _pixels(page)
    for rgb in COLOURS:
        assert _count(pixels, rgb) > 100


def test_the_browser_keeps_a_bounded_window_of_decoded_frames(tmp_path, page):
    widget = _widget(frames=30)
    widget.frame_window = 4
    _open(page, widget, tmp_path)
    page.locator(".sc-slider").focus()
    page.keyboard.press("Home")
    first = _pixels(page)
    for _ in range(29):
        page.keyboard.press("ArrowRight")
    assert page.locator(".sc-epoch").text_content() == "epoch 290 · 30/30"
    assert page.evaluate(f"{VIEW}.frameCount()") == 30
    assert page.evaluate(f"{VIEW}.decodedCount") <= 4
    page.keyboard.press("Home")
    assert np.array_equal(_pixels(page), first)  # re-decoded on demand, the same picture


def test_theme_colours_come_from_css_variables_and_the_wheel_scrolls_the_page(tmp_path, page):
    _open(page, _widget(), tmp_path)
    # VS Code's dark theme sets these on the page; the widget's text and controls follow them
    page.add_style_tag(
        content="body { --vscode-editor-foreground: rgb(204, 204, 204); "
        "--vscode-editor-background: rgb(30, 30, 30); background: rgb(30, 30, 30); "
        "padding-bottom: 3000px; }"
    )
    page.evaluate(NEXT_PAINT)
    colour = "(s) => getComputedStyle(document.querySelector(s)).color"
    assert page.evaluate(colour, ".sc-readout") == "rgb(204, 204, 204)"
    assert page.evaluate(colour, ".sc-class-name") == "rgb(204, 204, 204)"
    before = _pixels(page)
    box = page.locator(".sc-plot canvas").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 300)
    page.wait_for_function("window.scrollY > 0", timeout=5000)
    page.evaluate("window.scrollTo(0, 0)")
    page.mouse.move(0, 0)
    # the plot did not zoom: still fitted, the same points (edges aside: the scroll may move
    # the canvas by a fraction of a pixel)
    assert "sc-active" in page.locator(".sc-fit").get_attribute("class")
    assert np.array_equal(_pixels(page)[8:-8, 8:-8], before[8:-8, 8:-8])


def test_neighbouring_frames_are_prepared_in_idle_time_with_the_same_picture(tmp_path, page):
    widget = _widget(frames=8)
    _open(page, widget, tmp_path)
    page.evaluate(f"{VIEW}.setPosition(2)")  # back from the newest: checkpoint 1, then 3
    page.wait_for_function(f"!{VIEW}.preparing")
    switch = f"""(() => {{ const stats = () => {VIEW}.plot.rasterStats;
        const made = stats().made; {VIEW}.setPosition(3); return stats().made - made; }})()"""
    assert page.evaluate(switch) == 0  # no rasterising on the switch
    prepared = _pixels(page)
    page.reload()
    page.wait_for_function(f"{VIEW} !== undefined", timeout=30000)
    page.evaluate(f"{VIEW}.setPosition(3)")  # not a neighbour of 7: rasterised on the switch
    assert np.array_equal(_pixels(page), prepared)
    for position in range(8):  # scrubbing keeps a bounded number of point rasters
        page.evaluate(f"{VIEW}.setPosition({position})")
        page.evaluate(NEXT_PAINT)
    assert page.evaluate(f"{VIEW}.plot.rasterStats.kept") <= 4


def test_each_paint_starts_from_a_wholly_cleared_canvas(tmp_path, page):
    # Bokeh's own clear runs under the layer's half-pixel offset and leaves a strip along two
    # edges, which keeps Chromium redrawing earlier paints; the view clears the whole canvas
    _open(page, _widget(), tmp_path)
    corner = f"""(() => {{ const layer = {VIEW}.plot.plotView.canvas_view.primary;
        const ctx = layer.ctx;
        layer.undo_transform((c) => {{ c.fillStyle = "#000"; c.fillRect(0, 0, c.canvas.width, c.canvas.height); }});
        layer.prepare();
        const alpha = [ctx.getImageData(0, 0, 1, 1).data[3], ctx.getImageData(0, 5, 1, 1).data[3]];
        layer.finish();
        return alpha; }})()"""
    assert page.evaluate(corner) == [0, 0]


def test_a_switch_leaves_unchanged_renderer_styles_alone(tmp_path, page):
    # Bokeh rewrites each renderer's position stylesheet at every paint; the view keeps the
    # text node (and so the parsed sheet) of every one that reads the same
    _open(page, _widget(), tmp_path)
    sheets = f"""() => [...{VIEW}.plot.plotView.renderer_views.values()]
        .map((view) => view.position?.el).filter((el) => el != null)
        .map((el) => [el.firstChild, el.textContent])"""
    page.evaluate(f"window.__before = ({sheets})()")
    page.evaluate(f"{VIEW}.setPosition(1); {VIEW}.plot.repaint()")
    kept = page.evaluate(
        f"""(({sheets})()).map(([node, text], i) => [text === window.__before[i][1], node === window.__before[i][0]])
        .filter(([same]) => same).map(([, kept]) => kept)"""
    )
    assert len(kept) > 3 and all(kept)
