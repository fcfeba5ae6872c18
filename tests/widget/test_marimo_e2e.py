"""End to end in marimo (``marimo run`` server, headless Debian chromium): marimo's anywidget
support resolves the widget's child models, so the view scrubs and selects as in Jupyter."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest
from jupyter_servers import REPO, free_port

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
APP = """\
import marimo

app = marimo.App()


@app.cell
def _():
    import marimo as mo
    import numpy as np
    from widget_synthetic import synthetic_checkpoint, synthetic_frame
    from sentrycam_widget.widget import SentryCamWidget

    labels = np.arange(300) % 3
    w = SentryCamWidget(labels, {"sentrycam": True}, class_names=["cat", "dog", "owl"])
    for i in range(4):
        w.add_checkpoint(synthetic_checkpoint(i, labels))
        w.add_frame(synthetic_frame("sentrycam", i, len(labels)))
    view = mo.ui.anywidget(w)
    view
    return
"""


@pytest.fixture
def marimo_app(tmp_path):
    pytest.importorskip("marimo")
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    paths = [str(REPO), str(REPO / "tests" / "widget"), os.environ.get("PYTHONPATH", "")]
    log = (tmp_path / "marimo.log").open("w")
    command = [sys.executable, "-m", "marimo", "run", "app.py", "--headless", "--no-token"]
    server = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail(f"marimo did not start: {(tmp_path / 'marimo.log').read_text()[-2000:]}")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_the_widget_runs_in_marimo(marimo_app):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1200})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(marimo_app)
        epoch = page.locator(".sc-epoch")
        epoch.wait_for(timeout=120_000)
        # marimo puts the widget in a shadow root: locators (not querySelector) reach it
        expect(epoch).to_have_text("epoch 30 · 4/4", timeout=60_000)
        assert page.locator(".sc-class").all_text_contents() == [
            "cat (100)",
            "dog (100)",
            "owl (100)",
        ]
        plot = page.locator(".sc-plot canvas").first
        before = plot.screenshot()
        page.locator(".sc-slider").focus()
        page.keyboard.press("Home")
        assert epoch.text_content() == "epoch 0 · 1/4"
        page.wait_for_timeout(200)
        assert plot.screenshot() != before
        page.locator('.sc-mode[data-mode="box"]').click()
        box = plot.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.7, steps=5)
        page.mouse.up()
        assert page.locator(".sc-selection").text_content().split()[1] == "selected"
        assert errors == []
        assert page.locator(".sc-fatal").count() == 0
        browser.close()
