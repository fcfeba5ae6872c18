"""End to end in Jupyter Notebook 7 (real server, real kernel, headless Debian chromium).

Two widgets in one notebook: both render from one BokehJS (sent once by the kernel, injected
once in the page), the legend and timeline work, and a box selection made in the browser is what
Python reads back from ``widget.selected`` in the next cell.
"""

from __future__ import annotations

import re

import nbformat
import pytest
from jupyter_servers import REPO, jupyter_server
from playwright.sync_api import TimeoutError as PlaywrightTimeout

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
NEXT_PAINT = "new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
ARTIFACTS = REPO / "artifacts"
SETUP = """\
import numpy as np
from widget_synthetic import synthetic_checkpoint, synthetic_frame
from sentrycam_widget.widget import SentryCamWidget

labels = np.arange(300) % 3
widgets = []
for seed in range(2):
    w = SentryCamWidget(labels, {"sentrycam": True}, class_names=["cat", "dog", "owl"])
    for i in range(4):
        w.add_checkpoint(synthetic_checkpoint(i, labels, seed=seed))
        w.add_frame(synthetic_frame("sentrycam", i, len(labels)))
    widgets.append(w)
display(*widgets)
"""
READ_BACK = 'print("SELECTED", widgets[0].selected.tolist())'
BOKEH_SCRIPTS = (
    "[...document.querySelectorAll('script')]"
    ".filter((s) => s.textContent.includes('Bokeh Contributors')).length"
)


def _run_cell(page, cell) -> None:
    """Shift+Enter in the cell until its prompt shows it ran or runs (a key press that arrives
    before the kernel session is connected is dropped)."""
    prompt = cell.locator(".jp-InputPrompt")
    ran = "(el) => /\\[(\\*|\\d+)\\]/.test(el.textContent)"
    for _ in range(30):
        cell.locator(".cm-content").click()
        page.keyboard.press("Shift+Enter")
        try:
            page.wait_for_function(ran, arg=prompt.element_handle(), timeout=5_000)
            return
        except PlaywrightTimeout:
            if re.search(r"\[(\*|\d+)\]", prompt.text_content()):
                return
    pytest.fail(f"the cell never ran: prompt {prompt.text_content()!r}")


@pytest.fixture
def notebook7(tmp_path):
    root = tmp_path / "nb"
    root.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP), nbformat.v4.new_code_cell(READ_BACK)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, root / "two_widgets.ipynb")
    lines = [
        "c.IdentityProvider.token = ''",
        "c.ServerApp.password = ''",
        "c.ServerApp.disable_check_xsrf = True",
    ]
    with jupyter_server("notebook", root, tmp_path, lines) as url:
        yield url


def test_two_widgets_in_notebook7_share_bokehjs_and_send_the_selection_to_python(notebook7):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        errors = []
        page.on("pageerror", lambda e: errors.append(f"{e} {e.stack}"))
        page.goto(f"{notebook7}/notebooks/two_widgets.ipynb")
        cells = page.locator(".jp-Notebook .jp-Cell")
        cells.first.wait_for(timeout=120_000)
        page.wait_for_selector(
            ".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000
        )
        _run_cell(page, cells.nth(0))

        roots = page.locator(".sc-root")
        page.wait_for_function(
            "[...document.querySelectorAll('.sc-root')].filter((r) => "
            "r.parentElement.sentrycam?.frameCount() === 4).length === 2",
            timeout=120_000,
        )
        assert roots.count() == 2
        assert page.evaluate(BOKEH_SCRIPTS) == 1
        assert page.locator(".sc-plot canvas").count() >= 2
        assert roots.nth(0).locator(".sc-class").all_text_contents() == [
            "cat (100)",
            "dog (100)",
            "owl (100)",
        ]
        assert roots.nth(0).locator(".sc-readout").text_content().startswith("validation loss")

        view = "document.querySelector('.sc-root').parentElement.sentrycam"
        roots.nth(0).locator('.sc-mode[data-mode="box"]').click()
        canvas = roots.nth(0).locator(".sc-plot canvas").first
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        x0, y0 = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x0 + box["width"] * 0.3, y0 + box["height"] * 0.3, steps=5)
        page.mouse.up()
        selected = page.evaluate(f"{view}.selection")
        assert len(selected) > 5
        page.evaluate(NEXT_PAINT)
        page.screenshot(path=str(ARTIFACTS / "notebook7_two_widgets.png"))

        _run_cell(page, cells.nth(1))
        output = cells.nth(1).locator(".jp-OutputArea-output")
        output.wait_for(timeout=60_000)
        page.wait_for_function(
            "document.querySelectorAll('.jp-Cell')[1].innerText.includes('SELECTED')",
            timeout=60_000,
        )
        printed = re.search(r"SELECTED (\[.*\])", output.text_content()).group(1)
        assert printed == str(selected)
        # Notebook 7 itself logs a settings-schema TypeError from its own bundle in a fresh
        # profile; every other page error (ours would come from the widget's module) fails
        assert [e for e in errors if "/static/notebook/" not in e] == []
        assert all(t == "" for t in page.locator(".sc-error").all_text_contents())
        browser.close()
