"""Fixtures for the widget tests: a recording comm (no kernel) and a headless Chromium page."""

from __future__ import annotations

import threading
from typing import ClassVar

import comm
import pytest
from comm.base_comm import BaseComm


class RecordingComm(BaseComm):
    """Records every message a widget publishes, with the name of the thread that sent it."""

    log: ClassVar[list[dict]] = []

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        RecordingComm.log.append(
            {
                "type": msg_type,
                "comm_id": self.comm_id,
                "data": data,
                "buffers": [bytes(b) for b in buffers or []],
                "thread": threading.current_thread().name,
            }
        )


@pytest.fixture
def wire(monkeypatch):
    RecordingComm.log = []
    monkeypatch.setattr(comm, "create_comm", lambda **kw: RecordingComm(**kw))
    return RecordingComm.log


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def page():
    """A page in Debian's chromium that records the URLs it requests and its script errors."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.requests = []
        page.errors = []
        page.on("request", lambda r: page.requests.append(r.url))
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        yield page
        browser.close()
