"""Start a real Jupyter server (JupyterLab or Notebook 7) for the browser tests, offline."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


class ServerUrl(str):
    """The server's base URL, with ``root`` = the directory it serves."""

    root: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyter_server(
    app: str, root: Path, workdir: Path, config_lines: list[str]
) -> Iterator[ServerUrl]:
    """Run ``python -m <app>`` (``jupyterlab`` or ``notebook``) serving ``root`` until exit.

    ``config_lines`` are added to the server's Python config file (e.g. galata's test setup).
    The repository and tests/widget are on the kernels' ``PYTHONPATH``.
    """
    port = free_port()
    config = workdir / f"{app}_server_config.py"
    config.write_text(
        "\n".join(
            [
                *config_lines,
                f"c.ServerApp.root_dir = {str(root)!r}",
                f"c.ServerApp.port = {port}",
                "c.ServerApp.ip = '127.0.0.1'",
                "c.ServerApp.allow_root = True",
                "c.ServerApp.open_browser = False",
            ]
        )
        + "\n"
    )
    paths = [str(REPO), str(REPO / "tests" / "widget"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    log_path = workdir / f"{app}.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", app, "--config", str(config)],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = ServerUrl(f"http://127.0.0.1:{port}")
        url.root = root
        try:
            for _ in range(120):
                try:
                    urllib.request.urlopen(f"{url}/api/status", timeout=2)
                    break
                except OSError:
                    time.sleep(1)
            else:
                pytest.fail(f"{app} did not start: {log_path.read_text()[-2000:]}")
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)
