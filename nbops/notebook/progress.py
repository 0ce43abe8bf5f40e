"""Where a running notebook is: one event per cell start, printed line and completion, and the
plain-text lines that carry them from a stage's log to whoever reads it.

The stage command prints these lines to its stdout, which is its log locally and its pod's log
under Airflow (so a task's log in Airflow shows the stage's progress); ``nbops run`` reads them
back from each running stage's log file (:func:`parse`). The format is stable::

    nbops: cell 7/12 started
    nbops: cell 7/12 running 12.3s | <the latest line the cell printed>
    nbops: cell 7/12 done in 14.1s | <the last line the cell printed>

``7/12`` is the cell's position among the code cells that run (the injected-parameters cell
included, exploration cells not); a cell that printed nothing has no ``| ...`` part. A
``running`` line comes when the cell printed a new line: its first at once, then at most
every :data:`RUNNING_EVERY_S` seconds. Printed lines are masked for secrets before they get here,
as the archived notebook is, and cut to :data:`MAX_LINE` characters. The kernel's own output
may share the log: a line is recognised wherever ``nbops: cell`` starts in it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, TextIO

STARTED: Final = "started"
RUNNING: Final = "running"
DONE: Final = "done"
Kind = Literal["started", "running", "done"]
RUNNING_EVERY_S = 2.0
"""A running cell's latest printed line reaches the log at once, then at most this often."""
MAX_LINE = 200
"""Printed lines are cut to this many characters."""
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_LINE = re.compile(
    r"nbops: cell (?P<position>\d+)/(?P<total>\d+) "
    r"(?:(?P<started>started)|running (?P<running>\d+(?:\.\d+)?)s|done in (?P<done>\d+(?:\.\d+)?)s)"
    r"(?: \| (?P<line>.*))?$"
)


@dataclass(frozen=True)
class CellProgress:
    """One event of a running notebook.

    ``position`` counts from 1 among the ``total`` code cells that run; ``source`` is the
    cell's index in the source notebook (None for the injected-parameters cell; None as well
    when read back from a log line); ``elapsed`` is the cell's seconds so far; ``line`` the
    latest non-empty line it printed.
    """

    kind: Kind
    position: int
    total: int
    elapsed: float = 0.0
    line: str = ""
    source: int | None = None

    def render(self) -> str:
        """The event as its log line (see the module docstring)."""
        head = f"nbops: cell {self.position}/{self.total}"
        if self.kind == STARTED:
            return f"{head} started"
        verb = f"running {self.elapsed:.1f}s" if self.kind == RUNNING else f"done in {self.elapsed:.1f}s"
        return f"{head} {verb} | {self.line}" if self.line else f"{head} {verb}"


def parse(text: str) -> CellProgress | None:
    """The event a log line carries, or None for any other line."""
    at = text.find("nbops: cell ")
    match = _LINE.match(text.rstrip("\r\n"), at) if at >= 0 else None
    if match is None:
        return None
    kind: Kind = STARTED if match["started"] else RUNNING if match["running"] else DONE
    return CellProgress(
        kind=kind,
        position=int(match["position"]),
        total=int(match["total"]),
        elapsed=float(match["running"] or match["done"] or 0.0),
        line=match["line"] or "",
    )


def last_line(output: Any) -> str:
    """The latest non-empty line of a cell output (a stream's text or a result's ``text/plain``),
    without terminal colours; a progress bar's ``\\r`` starts a line too."""
    kind = output.get("output_type")
    if kind == "stream":
        text = output.get("text", "")
    elif kind in ("execute_result", "display_data"):
        text = output.get("data", {}).get("text/plain", "")
    else:
        return ""
    if isinstance(text, list):
        text = "".join(text)
    for line in reversed(re.split(r"[\r\n]", _ANSI.sub("", str(text)))):
        if line.strip():
            return line.strip()
    return ""


class CellClock:
    """The engine's side: turns cell starts, outputs and completions into events for ``report``,
    printed lines masked by ``mask`` (before they are cut, so no secret is cut in two)."""

    def __init__(self, total: int, report: Callable[[CellProgress], None], mask: Callable[[str], str]) -> None:
        self.total = total
        self.report = report
        self.mask = mask
        self.position = 0
        self.source: int | None = None
        self.began = 0.0
        self.line = ""

    def started(self, source: int | None) -> None:
        """A code cell that runs starts now."""
        self.position += 1
        self.source, self.began, self.line = source, time.monotonic(), ""
        self.report(CellProgress(STARTED, self.position, self.total, source=source))

    def printed(self, output: Any) -> None:
        """The running cell produced ``output``."""
        line = last_line(output)
        if line:
            self.line = self.mask(line)[:MAX_LINE]
            self._event(RUNNING)

    def done(self) -> None:
        """The running cell completed (or ended the run)."""
        self._event(DONE)

    def _event(self, kind: Kind) -> None:
        elapsed = time.monotonic() - self.began
        self.report(CellProgress(kind, self.position, self.total, elapsed, self.line, self.source))


class LinePrinter:
    """The stage command's side: prints every start and completion, and a running cell's latest
    line when it changed: the first at once, then at most every ``every`` seconds."""

    def __init__(self, stream: TextIO, every: float = RUNNING_EVERY_S) -> None:
        self.stream = stream
        self.every = every
        self._last = float("-inf")
        self._shown = ""

    def __call__(self, event: CellProgress) -> None:
        if event.kind == RUNNING:
            now = time.monotonic()
            if now - self._last < self.every or event.line == self._shown:
                return
            self._last, self._shown = now, event.line
        elif event.kind == STARTED:
            self._last, self._shown = float("-inf"), ""
        self.stream.write(event.render() + "\n")
        self.stream.flush()
