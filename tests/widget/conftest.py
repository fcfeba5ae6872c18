"""Fixtures for the widget tests: a recording comm (no kernel) and small synthetic runs."""

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
