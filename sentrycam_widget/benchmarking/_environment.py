"""Where a benchmark writes and what it ran on: the results folder, versions, cores, the commit."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

# default results folder, relative to the working directory (benchmarks/*.py pass their own)
RESULTS = Path("benchmarks") / "results"


def environment() -> dict[str, str]:
    """Versions, cores and the code's commit (the 2-D signals depend on the projection engine)."""
    import platform
    import subprocess

    import torch

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=Path(__file__).resolve().parent,
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return "unknown"
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "sentrycam_widget")
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpus": str(os.cpu_count()),
        "commit": git("rev-parse", "--short", "HEAD")
        + (" with uncommitted changes to sentrycam_widget" if changed else ""),
    }


def version(dist: str) -> str:
    """The installed version of distribution ``dist``."""
    from importlib.metadata import version

    return version(dist)
