"""SIGTERM and SIGINT to ``nbops run``: stop the stages, close the record, say how to resume.

The first signal raises :class:`RunInterrupted` in the main thread wherever the runner is
(loading the spec, creating the parent run, waiting for stages); the runner then stops every
running stage within the grace period, closes the parent run ``KILLED`` and exits 3. Later
signals are noted and ignored, so a second Ctrl-C cannot cut the clean-up short.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

from nbops.stage.signals import HANDLED, NotedSignals


class RunInterrupted(KeyboardInterrupt):
    """The run was asked to stop; ``str()`` is the signal's name."""


class RunSignals(NotedSignals):
    """Installs the runner's handlers for the length of a ``with`` block (main thread only)."""

    def __init__(self) -> None:
        super().__init__(HANDLED)
        self._deferred = False

    def defer(self) -> None:
        """From now on a signal is only noted: the run is already closing its record."""
        self._deferred = True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is not None or self._deferred:
            print(f"nbops run: {name} received; already finishing", file=sys.stderr, flush=True)  # noqa: T201
            self.received = self.received or name
            return
        self.received = name
        raise RunInterrupted(name)
