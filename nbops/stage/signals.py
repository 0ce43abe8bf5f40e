"""Signals during a stage attempt: stop the kernel and archive, or finish the record first.

While the attempt runs (kernel start-up and cells), SIGTERM and SIGINT raise
:class:`~nbops.notebook.outcome.Terminated` in the main thread and the stage timeout raises
:class:`~nbops.notebook.outcome.StageTimedOut` (a ``SIGALRM`` timer), so the engine can mark
the running cell, stop the kernel and let the attempt archive and record what it has.
Before the claim a signal stops the attempt with nothing claimed; after the notebook has
finished it is only noted: archiving, recording and sealing take seconds and finish.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterable
from types import FrameType
from typing import Any, Self

HANDLED = (signal.SIGTERM, signal.SIGINT)


class NotedSignals:
    """Handlers for ``signums`` for the length of a ``with`` block (main thread only) that note the
    first signal's name in ``received``; subclasses act on it in :meth:`_on_signal`."""

    def __init__(self, signums: Iterable[signal.Signals] = HANDLED) -> None:
        self.received: str | None = None
        self._signums = tuple(signums)
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for signum in self._signums:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received = self.received or signal.Signals(signum).name


class AttemptSignals:
    """Installs the attempt's signal handlers for its whole life; ``phase`` decides what they do."""

    def __init__(self, terminated: type[BaseException], timed_out: type[BaseException]) -> None:
        self._terminated = terminated
        self._timed_out = timed_out
        self._previous: dict[int, Any] = {}
        self._raising = True
        self._timeout: float | None = None
        self.received: str | None = None
        self._active = threading.current_thread() is threading.main_thread()

    def __enter__(self) -> AttemptSignals:
        if self._active:
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._on_signal)
            self._previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, self._on_alarm)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._active:
            signal.setitimer(signal.ITIMER_REAL, 0)
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
            self._previous.clear()

    def start_timer(self, seconds: float, limit: float | None = None) -> None:
        """Raise the stage timeout (``limit``, default ``seconds``) after ``seconds``, the time left."""
        self._timeout = seconds if limit is None else limit
        if self._active:
            signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))

    def defer(self) -> None:
        """From now on a signal is only noted: the notebook is done, the record must finish."""
        self._raising = False
        if self._active:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.received = self.received or name
        if not self._raising:
            _say(f"{name} received: finishing the record of the attempt first")
            return
        _say(f"{name} received: stopping the kernel, archiving the partial notebook")
        self._raising = False  # one stop is enough; a second signal must not interrupt the archiving
        raise self._terminated(name)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if not self._raising or self._timeout is None:
            return
        _say(f"the stage timeout of {self._timeout:g} s ran out: stopping the kernel, archiving the partial notebook")
        self._raising = False
        raise self._timed_out(self._timeout)


def _say(message: str) -> None:
    print(f"nbops: {message}", file=sys.stderr, flush=True)  # noqa: T201 - the stage's own log
