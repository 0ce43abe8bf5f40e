"""An executed notebook's cells as plain text, for ``nbops logs`` and ``nbops debug`` (DESIGN §18).

Each code cell is a header line naming it by its index in the source notebook (the executed one
has Papermill's injected-parameters cell inserted, so positions differ from the second cell on),
its execution count and the first line of its source, marked when it is the injected cell, was
skipped, did not run or is where the attempt stopped; then its outputs, indented: printed text,
``text/plain`` results, ``[image/png]`` for what has no text form, errors as ``ename: evalue`` and
their traceback without terminal colours. Markdown is left out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import nbformat
from nbformat import NotebookNode

from nbops.errors import InfraError
from nbops.notebook.outcome import describe_cell
from nbops.notebook.tags import INJECTED, cell_tags
from nbops.status import StageStatus

INDENT = "    "
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_FIRST_LINE = 100
_DONE = ("completed", "failed")
"""Papermill's per-cell ``status`` once a cell has run."""


def parse(raw: bytes, where: str) -> NotebookNode:
    """The notebook in ``raw`` (read from ``where``).

    Raises:
        InfraError: not a notebook (a damaged store, or a copy caught half-written by a reader
            of a store that does not replace files whole).
    """
    try:
        nb: NotebookNode = nbformat.reads(raw.decode("utf-8"), as_version=4)  # type: ignore[no-untyped-call]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise InfraError(f"{where}: not a readable notebook ({exc}).") from exc
    return nb


def plain(text: str) -> str:
    """``text`` without terminal colour codes, each line as a terminal shows it after ``\\r``."""
    lines = _ANSI.sub("", text).split("\n")
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in lines)


class NotebookText:
    """One executed notebook, read once: where each cell came from and how the attempt ended."""

    def __init__(self, nb: NotebookNode) -> None:
        self.nb = nb
        self.cells: list[Any] = list(nb.cells)
        self.meta: dict[str, Any] = dict(nb.metadata.get("nbops") or {})
        self.indices = source_indices(self.cells)
        self.stopped_at = self._stopped_at()

    @property
    def status(self) -> StageStatus | None:
        """How the attempt's notebook ended, or None while it runs (or when the record is foreign)."""
        try:
            return StageStatus(self.meta.get("status"))
        except ValueError:
            return None

    def _stopped_at(self) -> int | None:
        """The position of the cell where the attempt stopped: the one whose source index the record
        names, else (the injected cell, or no record yet) the cell Papermill marked failed."""
        named = self.meta.get("failed_cell")
        if isinstance(named, int) and named in self.indices:
            return self.indices.index(named)
        return next((i for i, c in enumerate(self.cells) if _papermill(c).get("status") == "failed"), None)

    def name(self, position: int) -> str:
        """``cell 3 (In [5])``, or ``the injected-parameters cell``: how messages name a cell."""
        index = self.indices[position]
        if index is None:
            return "the injected-parameters cell"
        return describe_cell(index, _count(self.cells[position]))

    def finished(self, position: int) -> bool:
        """Whether the cell at ``position`` will not change any more: it ran to its end, was skipped,
        or is not code; every cell once the attempt's notebook has ended."""
        cell = self.cells[position]
        if self.status is not None or cell.get("cell_type") != "code":
            return True
        meta = _papermill(cell)
        return bool(cell.get("metadata", {}).get("nbops", {}).get("skipped")) or (
            meta.get("status") in _DONE and bool(meta.get("end_time"))
        )

    def settled(self, start: int = 0) -> int:
        """The position after the finished cells from ``start`` on (``start`` when that one runs still)."""
        end = start
        while end < len(self.cells) and self.finished(end):
            end += 1
        return end

    def render(self, start: int = 0, stop: int | None = None) -> str:
        """The code cells from ``start`` to ``stop`` (all by default) as text, one header line each."""
        stop = len(self.cells) if stop is None else stop
        parts = [self.cell_text(i) for i in range(start, stop) if self.cells[i].get("cell_type") == "code"]
        return "".join(parts)

    def cell_text(self, position: int) -> str:
        """One code cell: its header, then its outputs indented."""
        cell = self.cells[position]
        body = [line for output in cell.get("outputs", []) for line in output_lines(output)]
        return self.header(position) + "\n" + "".join(f"{INDENT}{line}".rstrip() + "\n" for line in body)

    def header(self, position: int) -> str:
        """``[3] In [5]: model.fit(X, y)``, marked for the injected cell, a skipped or unrun cell and
        the cell where the attempt stopped."""
        cell = self.cells[position]
        index = self.indices[position]
        label = "injected parameters" if index is None else str(index)
        ran = _papermill(cell).get("status") in (*_DONE, "running") or _count(cell) is not None
        if cell.get("metadata", {}).get("nbops", {}).get("skipped"):
            state = "skipped:"
        elif not ran:
            state = "not run:"
        else:
            count = _count(cell)
            state = f"In [{count if count is not None else ' '}]:"
        shown = first_line(cell.get("source", ""), assignments=index is None)
        line = f"[{label}] {state} {shown}".rstrip()
        if position == self.stopped_at and self.status is not StageStatus.SUCCEEDED:
            line += f"  <-- {(self.status or StageStatus.FAILED).value.replace('_', ' ')} here"
        return line

    def error(self) -> tuple[str, str]:
        """The error the stopping cell shows (its last), as ``(ename, evalue)``; empty when none."""
        if self.stopped_at is None:
            return "", ""
        errors = [o for o in self.cells[self.stopped_at].get("outputs", []) if o.get("output_type") == "error"]
        if not errors:
            return str(self.meta.get("error") or ""), ""
        return str(errors[-1].get("ename", "")), plain(str(errors[-1].get("evalue", "")))

    def summary(self) -> str:
        """One sentence saying how the notebook ended (``cell 3 (In [5]) raised ValueError: boom``),
        or that it is still running."""
        status = self.status
        if status is None:
            return "still running (no outcome recorded in the notebook yet)"
        ename, evalue = self.error()
        cell = self.name(self.stopped_at) if self.stopped_at is not None else ""
        limit = self.meta.get("limit")
        return status.message(cell=cell, ename=ename, evalue=evalue, limit=limit)


def source_indices(cells: Sequence[Any]) -> list[int | None]:
    """Each executed cell's index in the source notebook: None for Papermill's injected-parameters
    cell, the others in order (nbops records failed and skipped cells by these indices)."""
    found: list[int | None] = []
    index = 0
    for cell in cells:
        if INJECTED in cell_tags(cell):
            found.append(None)
        else:
            found.append(index)
            index += 1
    return found


def first_line(source: Any, *, assignments: bool = False) -> str:
    """The first non-blank line of a cell's source, cut to a readable length; with ``assignments``
    (the injected cell, whose first line is Papermill's comment), its code lines joined by ``; ``."""
    text = "".join(source) if isinstance(source, list) else str(source)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if assignments:
        lines = ["; ".join(ln for ln in lines if not ln.startswith("#"))]
    line = lines[0] if lines else ""
    return line if len(line) <= _FIRST_LINE else line[: _FIRST_LINE - 3] + "..."


def output_lines(output: Any) -> list[str]:
    """One output as lines of text: a stream's text, a result's ``text/plain`` (a placeholder such
    as ``[image/png]`` when it has an image or no text form), an error and its traceback."""
    kind = output.get("output_type")
    if kind == "stream":
        return _lines(plain(_joined(output.get("text", ""))))
    if kind in ("execute_result", "display_data"):
        data = output.get("data", {})
        images = [m for m in data if m.startswith("image/")]
        if images:
            return [f"[{images[0]}]"]
        if "text/plain" in data:
            return _lines(plain(_joined(data["text/plain"])))
        return [f"[{next(iter(data), 'no data')}]"]
    if kind == "error":
        head = f"{output.get('ename', '')}: {plain(str(output.get('evalue', '')))}"
        trace = [ln.rstrip() for entry in output.get("traceback", []) for ln in plain(str(entry)).split("\n")]
        return [head] + ([] if trace in ([], [head]) else trace)
    return []


def _lines(text: str) -> list[str]:
    return text.rstrip("\n").split("\n") if text.strip() else []


def _joined(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _papermill(cell: Any) -> dict[str, Any]:
    return dict(cell.get("metadata", {}).get("papermill") or {})


def _count(cell: Any) -> int | None:
    count = cell.get("execution_count")
    return count if isinstance(count, int) else None
