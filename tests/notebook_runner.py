"""Executing the project's notebooks headlessly in tests (nbclient, widget state stored)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]


def run_notebook(
    name: str, workdir: Path, monkeypatch: Any, *, epochs: tuple[int, int] | None = None
) -> nbformat.NotebookNode:
    """Run ``notebooks/<name>`` in ``workdir`` against this checkout and return it executed.

    ``epochs=(written, run)`` checks the notebook's ``EPOCHS = written`` parameter cell and runs
    it with ``run`` instead. The notebook must finish without an error output.
    """
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    if epochs is not None:
        written, run = epochs
        assert f"EPOCHS = {written}" in nb.cells[1].source
        nb.cells[1].source = nb.cells[1].source.replace(f"EPOCHS = {written}", f"EPOCHS = {run}")
    NotebookClient(
        nb,
        timeout=900,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(workdir)}},
    ).execute()
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert errors == []
    return nb


def widget_root(nb: nbformat.NotebookNode) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the saved widget-state map, the state of the one SentryCam widget in it)."""
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    roots = [m["state"] for m in state.values() if "frames" in m["state"] and "probe" in m["state"]]
    assert len(roots) == 1
    return state, roots[0]
