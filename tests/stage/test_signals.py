"""The attempt's signal handling: raise while running, note once the notebook is done."""

from __future__ import annotations

import os
import signal
import time

import pytest

from nbops.stage.signals import AttemptSignals

pytestmark = pytest.mark.unit


class Stop(KeyboardInterrupt):
    pass


class TimedOut(Stop):
    def __init__(self, limit: float) -> None:
        super().__init__(limit)
        self.limit = limit


def test_sigterm_raises_once_and_names_the_signal() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with AttemptSignals(Stop, TimedOut) as signals:
        with pytest.raises(Stop, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        os.kill(os.getpid(), signal.SIGINT)  # a second signal must not interrupt the archiving
        time.sleep(0.05)
        assert signals.received == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_stage_timer_raises_the_timeout_with_its_limit() -> None:
    with AttemptSignals(Stop, TimedOut) as signals:
        started = time.monotonic()
        with pytest.raises(TimedOut) as caught:
            signals.start_timer(0.2)
            time.sleep(5)
        assert caught.value.limit == 0.2
        assert time.monotonic() - started < 2


def test_after_defer_signals_and_the_timer_are_only_noted() -> None:
    with AttemptSignals(Stop, TimedOut) as signals:
        signals.start_timer(0.1)
        signals.defer()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)  # neither the signal nor the (cancelled) timer raises
        assert signals.received == "SIGINT"
