"""End to end in real JupyterLab (headless Debian chromium): the quickstart trains live.

While the training cell runs: at least 3 frames appear, the slider changes the picture, a
hovered point shows its tooltip. A screenshot is kept in artifacts/.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from jupyter_servers import jupyter_server

from tests.notebook_runner import run_notebook

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
NEXT_PAINT = "new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
VIEW = "document.querySelector('.sc-root')?.parentElement?.sentrycam"
KERNEL = "window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel?.status"
# Whether cells run is read from the notebook's cell models, not from the kernel's status: with
# ipykernel 7 the widget manager opens a subshell, and the control channel's busy/idle messages
# show the kernel "idle" while the training cell is still running.
CELLS = "window.jupyterapp.shell.currentWidget.content.widgets"
TRAINING_RUNS = f"{CELLS}[3].model.executionState === 'running'"
ALL_CELLS_RAN = (
    f"{CELLS}.every((c) => c.model.type !== 'code' "
    "|| (c.model.executionState === 'idle' && c.model.executionCount !== null))"
)


def _slider_home_changes_picture(page) -> bool:
    """Bring the plot into view, move the slider to the first checkpoint with the keyboard and
    compare the plot's pixels before and after."""
    plot = page.locator(".sc-plot")
    plot.scroll_into_view_if_needed()
    page.evaluate(NEXT_PAINT)
    before = plot.screenshot()
    page.locator(".sc-slider").focus()
    page.keyboard.press("Home")
    page.evaluate(NEXT_PAINT)
    return plot.screenshot() != before


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server (galata test configuration) serving a copy of the quickstart."""
    root = tmp_path / "lab"
    root.mkdir()
    # the quickstart, also projecting with UMAP so the method toggle has something to show
    nb = nbformat.read(REPO / "notebooks" / "01_quickstart.ipynb", as_version=4)
    marker = "class_names=[str(d) for d in range(10)],"
    assert marker in nb.cells[2].source
    nb.cells[2].source = nb.cells[2].source.replace(
        marker, marker + '\n    methods=("sentrycam", "umap"),'
    )
    # epochs of a realistic length (a digits epoch takes ~0.1 s; a real model's, seconds): the
    # cell then spends ~25 s training, so frames must arrive while it runs, not only in close()
    checkpoint = "mon.checkpoint(epoch, val_loss=val_loss, train_loss=train_loss, val_acc=val_acc)"
    assert checkpoint in nb.cells[3].source
    nb.cells[3].source = "import time\n\n" + nb.cells[3].source.replace(
        checkpoint, checkpoint + "\n    time.sleep(3)"
    )
    # start from a clean notebook: the committed one keeps its executed outputs and widget
    # state, whose (kernel-free) view would already show every frame before the run starts
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, root / "01_quickstart.ipynb")
    with jupyter_server(
        "jupyterlab",
        root,
        tmp_path,
        ["from jupyterlab.galata import configure_jupyter_server", "configure_jupyter_server(c)"],
    ) as url:
        yield url


# the screen position of the one among the first 100 samples farthest from every other point
ISOLATED_POINT = f"""() => {{
    const v = {VIEW}, f = v.frameAt(), n = f.n;
    const at = [...Array(n).keys()].map((i) => v.plot.toClient(f.xy[2 * i], f.xy[2 * i + 1]));
    let best = 0, widest = -1;
    for (let i = 0; i < Math.min(100, n); i++) {{
        let gap = Infinity;
        for (let j = 0; j < n; j++) {{
            if (j !== i) gap = Math.min(gap, Math.hypot(at[i].x - at[j].x, at[i].y - at[j].y));
        }}
        if (gap > widest) [best, widest] = [i, gap];
    }}
    return {{ index: best, x: at[best].x, y: at[best].y }};
}}"""


def test_quickstart_live_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(f"{lab}/lab/tree/01_quickstart.ipynb")
        page.wait_for_function("window.jupyterapp !== undefined", timeout=120_000)
        page.wait_for_function(f"{KERNEL} === 'idle'", timeout=120_000)
        # start the run without awaiting it (the command's promise settles when all cells end)
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

        # at least 3 frames while the training cell is still running
        page.wait_for_function(f"({VIEW}?.frameCount() ?? 0) >= 3", timeout=600_000, polling=250)
        assert page.evaluate(TRAINING_RUNS), "frames should arrive while the training cell runs"
        seen_busy = page.evaluate(f"{VIEW}.frameCount()")

        assert _slider_home_changes_picture(page), "moving the slider must change the picture"
        assert page.locator(".sc-epoch").text_content().startswith("epoch 0 ")
        plot = page.locator(".sc-plot")

        # under load the first checkpoint may be a skipped one, projected later by the backfill
        page.wait_for_function(f"{VIEW}.frameAt() !== null", timeout=600_000, polling=250)
        page.evaluate(NEXT_PAINT)
        target = page.evaluate(ISOLATED_POINT)  # hovering a point drawn under another is ambiguous
        page.mouse.move(target["x"], target["y"])
        tooltip = page.locator(".sc-tooltip")
        tooltip.wait_for(state="visible", timeout=10_000)
        assert f"sample {target['index']}" in tooltip.text_content()
        assert "prediction" in tooltip.text_content()
        assert tooltip.locator("canvas.sc-thumb").count() == 1

        page.screenshot(path=str(ARTIFACTS / "jupyterlab_quickstart.png"))
        page.wait_for_function(ALL_CELLS_RAN, timeout=900_000, polling=1000)
        page.evaluate(NEXT_PAINT)
        page.mouse.move(0, 0)
        page.add_style_tag(content=".Toastify { display: none !important; }")  # news toast
        page.locator(".sc-root").screenshot(path=str(ARTIFACTS / "jupyterlab_widget.png"))
        assert page.evaluate(f"{VIEW}.frameCount('sentrycam')") == 8
        assert page.evaluate(f"{VIEW}.frameCount('umap')") == 8
        assert page.locator(".sc-error").text_content() == ""

        # toggle the method on the same checkpoint: UMAP's picture, plainly without background
        page.mouse.move(0, 0)
        page.evaluate(NEXT_PAINT)
        sentrycam = plot.screenshot()
        assert page.locator(".sc-note").text_content() == ""
        page.locator('.sc-method[data-method="umap"]').click()
        page.evaluate(NEXT_PAINT)
        assert page.evaluate(f"{VIEW}.method") == "umap"
        assert (
            page.locator(".sc-note").text_content() == "no background: UMAP has no inverse mapping"
        )
        assert plot.screenshot() != sentrycam
        page.screenshot(path=str(ARTIFACTS / "jupyterlab_quickstart_umap.png"))
        browser.close()
    assert seen_busy >= 3


def test_saved_notebook_reopens_with_every_frame(lab, tmp_path, monkeypatch):
    """The quickstart executed headlessly (widget state stored) shows all frames in JupyterLab
    without running a cell, and scrubs (this caught Bokeh's document JSON breaking when a saved
    notebook sorts its keys)."""
    from nbformat.sign import NotebookNotary
    from playwright.sync_api import sync_playwright

    nb = run_notebook("01_quickstart.ipynb", tmp_path, monkeypatch, epochs=(8, 3))
    NotebookNotary().sign(nb)  # a notebook the user saved is trusted; only then do widgets render
    nbformat.write(nb, Path(lab.root) / "saved.ipynb")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(f"{lab}/lab/tree/saved.ipynb")
        page.wait_for_function(f"({VIEW}?.frameCount() ?? 0) === 3", timeout=120_000, polling=250)
        assert page.locator(".sc-epoch").text_content().startswith("epoch 2 ")
        assert _slider_home_changes_picture(page)
        page.screenshot(path=str(ARTIFACTS / "jupyterlab_saved_notebook.png"))
        browser.close()
