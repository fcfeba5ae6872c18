"""The monitor worker's pacing: it rests while the training thread is busy, never otherwise."""

from __future__ import annotations

import threading

import pytest

from sentrycam_widget import pacing
from sentrycam_widget.errors import InputError
from sentrycam_widget.pacing import Pacer


class FakeClockPacer(Pacer):
    """A pacer on a scripted clock: ``work`` and ``sleep`` advance it, ``training_busy`` says
    whether the training thread runs meanwhile (one full core) or idles."""

    def __init__(self, share: float, busy_until: float = float("inf")) -> None:
        self.wall = self.worker = self.training = 0.0
        self.busy_until = busy_until
        self.chores_done = 0
        super().__init__(share, training=1, chores=self.chore)

    def chore(self) -> None:
        self.chores_done += 1

    def work(self, seconds: float) -> None:
        self.worker += seconds
        self._advance(seconds)

    def _sleep(self, seconds: float) -> None:
        self._advance(seconds)

    def _advance(self, seconds: float) -> None:
        busy = max(0.0, min(self.wall + seconds, self.busy_until) - self.wall)
        self.training += busy
        self.wall += seconds

    def _now(self) -> tuple[float, float, float]:
        return self.wall, self.worker, self.training


def run_worker(pacer: FakeClockPacer, bursts: int, seconds: float = 0.002) -> None:
    pacer.pause()  # the first pause on the paced thread marks its start
    for _ in range(bursts):
        pacer.work(seconds)
        pacer.pause()


def test_the_worker_uses_its_share_of_the_time_while_training_is_busy() -> None:
    pacer = FakeClockPacer(0.1)
    run_worker(pacer, 500)
    assert pacer.worker == pytest.approx(1.0)
    assert pacer.worker / pacer.wall == pytest.approx(0.1, rel=0.05)
    assert pacer.rested == pytest.approx(pacer.wall - pacer.worker)
    assert pacer.chores_done == 500 // 3  # one per rest: 5 ms of CPU (3 bursts) between rests


def test_the_worker_never_rests_while_training_idles_or_with_share_one() -> None:
    idle = FakeClockPacer(0.1, busy_until=0.0)
    run_worker(idle, 500)
    free = FakeClockPacer(1.0)
    run_worker(free, 500)
    assert idle.rested == free.rested == 0.0
    assert idle.chores_done == free.chores_done == 0
    assert idle.wall == pytest.approx(1.0) and free.wall == pytest.approx(1.0)


def test_a_rest_ends_once_training_goes_idle() -> None:
    pacer = FakeClockPacer(0.01, busy_until=0.05)
    run_worker(pacer, 1, seconds=0.02)  # a rest of 1.98 s asked for, training stops at 0.05 s
    assert pacer.wall < 0.05 + 2 * Pacer.SLICE


def test_pause_is_a_no_op_on_threads_without_a_pacer() -> None:
    pacer = FakeClockPacer(0.1)
    pacing.install(pacer)
    try:
        seen: list[object] = []
        other = threading.Thread(target=lambda: seen.append(pacing.pause()))
        other.start()
        other.join()
        pacing.pause()
        pacer.work(0.01)
        pacing.pause()  # this thread's pacer rests
    finally:
        pacing.install(None)
    assert seen == [None]
    assert pacer.rested > 0


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5])
def test_a_share_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(InputError, match="share"):
        Pacer(share)
