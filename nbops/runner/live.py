"""What each running stage is doing, read from its log: the cell it is on, for how long, and the
last line the cell printed.

Each stage command prints its cells' progress to its log (:mod:`nbops.notebook.progress`); the
runner reads every running stage's log from where it stopped, at most every
:data:`READ_EVERY_S` seconds, and shows it in one of the ``--progress`` modes: ``live``, a
region of stderr redrawn in place (rich), with the runner's event lines printed above it;
``plain``, a line per cell started or done (and a long cell's latest line at most every
:data:`PLAIN_RUNNING_EVERY_S` seconds), for CI and other logs; ``off``; ``auto``, live when
stderr is a terminal, else plain.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.notebook.progress import DONE, RUNNING, STARTED, CellProgress, parse

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live

    from nbops.runner.state import StageRun

MODES = ("auto", "live", "plain", "off")
READ_EVERY_S = 0.25
"""A running stage's log is read at most this often."""
PLAIN_RUNNING_EVERY_S = 30.0
"""In plain mode, a running cell's latest line is shown at most this often."""
REFRESH_PER_SECOND = 4
_READ_MAX = 1 << 20
_PARTIAL_MAX = 4096


class LogTail:
    """The lines appended to a file since the last read (a line still being written waits)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self._partial = b""

    def lines(self) -> list[str]:
        """Complete lines written since the last call (at most about a megabyte of them)."""
        try:
            with self.path.open("rb") as log:
                log.seek(self.offset)
                data = log.read(_READ_MAX)
        except OSError:
            return []
        self.offset += len(data)
        *complete, partial = (self._partial + data).split(b"\n")
        self._partial = partial[-_PARTIAL_MAX:]  # a progress line is short: the end of a long one will do
        return [line.decode("utf-8", errors="replace") for line in complete]


class _Watch:
    """One running stage: its log, its latest cell event, and when that event was read."""

    def __init__(self, label: str, path: Path, began: float) -> None:
        self.label = label
        self.began = began
        self.tail = LogTail(path)
        self.event: CellProgress | None = None
        self.since = time.monotonic()
        self.read_at = float("-inf")
        self.shown_at = float("-inf")

    def read(self) -> list[CellProgress]:
        self.read_at = time.monotonic()
        events = [e for e in map(parse, self.tail.lines()) if e is not None]
        if events:
            self.event, self.since = events[-1], self.read_at
        return events

    def status(self, now: float) -> tuple[str, str, str, str]:
        """The stage's seconds, its cell, the cell's seconds and last line, as the live region shows them."""
        stage = f"{now - self.began:.1f}s"
        event = self.event
        if event is None:
            return stage, "starting", "", ""
        cell = f"cell {event.position}/{event.total}"
        if event.kind == DONE:
            return stage, f"{cell} done", f"{event.elapsed:.1f}s", event.line
        return stage, cell, f"{event.elapsed + now - self.since:.1f}s", event.line


class Board:
    """Follows the running stages' logs and shows their progress in one of :data:`MODES`.

    ``say`` prints one plain line for a stage (``label``, text); ``console`` is where the live
    region is drawn (stderr by default).
    """

    def __init__(self, mode: str, say: Callable[[str, str], None], console: Console | None = None) -> None:
        if mode == "auto":
            terminal = _stderr_console(console)
            mode = "live" if terminal.is_terminal and not terminal.is_dumb_terminal else "plain"
        self.mode = mode
        self._say = say
        self._console = console
        self._watches: dict[str, _Watch] = {}
        self._lock = threading.Lock()
        self._live: Live | None = None

    def start(self) -> None:
        """Start drawing (live mode): from now on stderr lines appear above the region."""
        if self.mode != "live" or self._live is not None:
            return
        from rich.live import Live

        self._live = Live(
            get_renderable=self._render,
            console=_stderr_console(self._console),
            refresh_per_second=REFRESH_PER_SECOND,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=True,
        )
        self._live.start()

    def stop(self) -> None:
        """Stop drawing and remove the region (what follows is printed below the event lines)."""
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()

    def watch(self, st: StageRun) -> None:
        """Read ``st``'s log if it is time to (it is running)."""
        if self.mode == "off" or st.log_path is None:
            return
        watch = self._watches.get(st.name)
        if watch is None or watch.tail.path != st.log_path:
            watch = _Watch(st.label, st.log_path, st.started)
            with self._lock:
                self._watches[st.name] = watch
        if time.monotonic() - watch.read_at >= READ_EVERY_S:
            self._show(watch, watch.read())

    def end(self, st: StageRun) -> None:
        """``st``'s command exited: read the rest of its log, then forget it."""
        with self._lock:
            watch = self._watches.pop(st.name, None)
        if watch is not None and watch.tail.path == st.log_path:
            self._show(watch, watch.read())

    def _show(self, watch: _Watch, events: list[CellProgress]) -> None:
        if self.mode != "plain":
            return
        for event in events:
            if event.kind == RUNNING:
                if watch.read_at - watch.shown_at < PLAIN_RUNNING_EVERY_S:
                    continue
            elif event.kind == STARTED:
                watch.shown_at = watch.read_at
            self._say(watch.label, event.render().removeprefix("nbops: "))

    def _render(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        now = time.monotonic()
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True, justify="right")
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True, justify="right")
        table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
        with self._lock:
            watches = list(self._watches.values())
        for watch in watches:
            stage, cell, seconds, line = watch.status(now)
            table.add_row(Text(watch.label, style="bold"), stage, cell, seconds, Text(line, style="dim"))
        return table


def _stderr_console(console: Console | None) -> Console:
    from rich.console import Console

    return console if console is not None else Console(stderr=True, soft_wrap=True)
