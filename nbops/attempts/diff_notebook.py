"""Two notebooks compared cell by cell with nbdime, what changes from run to run left out.

nbdime aligns the two notebooks' cells (a cell moved, added, removed or edited) and says which
differ; the lines shown for a changed cell are a line diff of its source and of its outputs as
text. Before nbdime sees them the notebooks are normalised, so only the work itself can differ:
the cell papermill injects the parameters into is left out (the parameters are their own
section; cell indexes are then those of the source notebook), and so are execution counts, cell
ids, every metadata block (papermill's timings, execution times, the tags, ``metadata.nbops``)
and widget views, whose model ids are new in every kernel.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from nbops.attempts.diff_sections import CellChange, Line
from nbops.errors import InputError
from nbops.notebook.tags import INJECTED

CONTEXT = 2
"""Unchanged lines kept around each changed stretch of a cell's diff."""
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_TEXT_MIMES = ("text/plain", "text/markdown", "text/latex", "application/json")


def load(raw: bytes, where: str) -> dict[str, Any]:
    """A notebook's JSON, read from ``where``.

    Raises:
        InputError: the bytes are not a notebook.
    """
    try:
        nb = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{where}: not a readable notebook ({exc}).") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise InputError(f"{where}: not a notebook (no list of cells).")
    return nb


def normalised(nb: dict[str, Any], *, outputs: bool) -> dict[str, Any]:
    """A copy of ``nb`` without its injected-parameters cell and what changes from run to run;
    without outputs unless ``outputs``."""
    cells = []
    for cell in nb.get("cells", []):
        if INJECTED in (cell.get("metadata") or {}).get("tags", ()):
            continue
        kept: dict[str, Any] = {
            "cell_type": cell.get("cell_type", "code"),
            "metadata": {},
            "source": _text(cell.get("source")),
        }
        if kept["cell_type"] == "code":
            kept["execution_count"] = None
            kept["outputs"] = [_output(o) for o in cell.get("outputs", [])] if outputs else []
        cells.append(kept)
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def compare(a: dict[str, Any], b: dict[str, Any], *, outputs: bool) -> tuple[CellChange, ...]:
    """The cells that differ between notebooks ``a`` and ``b`` (sources, and outputs with ``outputs``)."""
    import nbformat
    from nbdime.diffing.notebooks import diff_notebooks

    na, nb = normalised(a, outputs=outputs), normalised(b, outputs=outputs)
    nodes = nbformat.from_dict(na), nbformat.from_dict(nb)  # type: ignore[no-untyped-call]
    entries = [e for e in diff_notebooks(*nodes) if e.key == "cells"]
    return _cell_changes(na["cells"], nb["cells"], entries[0].diff if entries else [], outputs)


def _cell_changes(
    a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]], entries: Any, outputs: bool
) -> tuple[CellChange, ...]:
    """nbdime's diff of the cell lists as cell changes; ``offset`` maps an index of ``a`` to ``b``."""
    changes: list[CellChange] = []
    offset = 0
    for entry in entries:
        if entry.op == "addrange":
            for i, cell in enumerate(entry.valuelist):
                changes.append(_whole("added", cell, None, entry.key + offset + i, outputs))
            offset += len(entry.valuelist)
        elif entry.op == "removerange":
            for i in range(entry.length):
                changes.append(_whole("removed", a[entry.key + i], entry.key + i, None, outputs))
            offset -= entry.length
        elif entry.op == "patch":
            old, new = a[entry.key], b[entry.key + offset]
            source = lines_diff(old["source"], new["source"])
            shown = lines_diff(outputs_text(old), outputs_text(new)) if outputs else ()
            changes.append(CellChange("changed", entry.key, entry.key + offset, new["cell_type"], source, shown))
    return tuple(changes)


def _whole(kind: str, cell: dict[str, Any], a_index: int | None, b_index: int | None, outputs: bool) -> CellChange:
    op = "+" if kind == "added" else "-"
    source = tuple(Line(op, line) for line in cell["source"].splitlines())
    shown = tuple(Line(op, line) for line in outputs_text(cell).splitlines()) if outputs else ()
    return CellChange(kind, a_index, b_index, cell["cell_type"], source, shown)


def lines_diff(a: str, b: str, context: int = CONTEXT) -> tuple[Line, ...]:
    """A line diff of ``a`` and ``b``, unchanged stretches cut to ``context`` lines around changes;
    empty when they are equal."""
    if a == b:
        return ()
    old, new = a.splitlines(), b.splitlines()
    found: list[Line] = []
    end = 0
    for group in difflib.SequenceMatcher(None, old, new, autojunk=False).get_grouped_opcodes(context):
        if group[0][1] > end:
            found.append(_gap(group[0][1] - end))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                found.extend(Line(" ", line) for line in old[i1:i2])
            else:
                found.extend(Line("-", line) for line in old[i1:i2])
                found.extend(Line("+", line) for line in new[j1:j2])
        end = group[-1][2]
    if end < len(old):
        found.append(_gap(len(old) - end))
    return tuple(found)


def _gap(count: int) -> Line:
    return Line("…", f"{count} unchanged line{'s' if count != 1 else ''}")


def outputs_text(cell: dict[str, Any]) -> str:
    """A code cell's outputs as text: streams and text results as they are, errors as
    ``Name: value``, other data by type, size and digest."""
    parts: list[str] = []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream":
            parts.append(_text(output.get("text")))
        elif kind == "error":
            parts.append(f"{output.get('ename', '')}: {output.get('evalue', '')}")
        else:
            parts.extend(_data_text(mime, value) for mime, value in sorted((output.get("data") or {}).items()))
    return "\n".join(p.rstrip("\n") for p in parts)


def _data_text(mime: str, value: Any) -> str:
    if mime in _TEXT_MIMES or mime.startswith("text/"):
        text = (
            value
            if isinstance(value, str)
            else json.dumps(value, sort_keys=True)
            if mime == "application/json"
            else _text(value)
        )
        return text if mime == "text/plain" else f"[{mime}]\n{text}"
    raw = _text(value).encode("utf-8")
    try:
        raw = base64.b64decode(raw, validate=True)
    except ValueError:
        pass
    return f"[{mime}: {len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()[:12]}]"


def _output(output: dict[str, Any]) -> dict[str, Any]:
    """An output without its metadata, execution count and widget views."""
    kept = {k: v for k, v in output.items() if k not in ("metadata", "execution_count", "transient")}
    if "text" in kept:
        kept["text"] = _text(kept["text"])
    if "data" in kept:  # multiline strings joined, as nbformat reads them
        kept["data"] = {m: _text(v) if isinstance(v, list) else v for m, v in kept["data"].items() if m != _WIDGET_VIEW}
    if kept.get("output_type") in ("execute_result", "display_data"):
        kept["metadata"] = {}
    if kept.get("output_type") == "execute_result":
        kept["execution_count"] = None
    return kept


def _text(value: Any) -> str:
    """Notebook text (a string or a list of lines) as one string."""
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return "" if value is None else str(value)
