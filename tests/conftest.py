"""Shared fixtures: one torch thread for modules that train small networks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sentrycam_widget.pipeline import torch_threads


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Small networks train fastest on one thread; two OpenMP teams on a busy machine spin-wait
    on each other. Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    with torch_threads(1):
        yield
