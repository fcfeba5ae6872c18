"""Fixtures for the integration tests: the digits split (scikit-learn's bundled copy)."""

from __future__ import annotations

import pytest

from sentrycam_widget import demo


@pytest.fixture(scope="session")
def digits() -> demo.DigitsData:
    return demo.digits_data()
