"""The executed notebook on disk, secrets masked, saved at a cost in proportion to what changed.

Papermill saves the executing notebook at the start and end of every cell (and every 30 s
while output arrives); masking and serializing the whole notebook on each save made a
notebook of four cells printing 5 MB each take ten times as long as under Papermill. Here
each cell keeps its masked JSON from the previous save and is masked and serialized again
only when something in it changed, and even then only the strings it had not seen are
masked; the file is rewritten from the first cell that changed on. Whether a cell changed
is a comparison of everything it is made of with what it was made of, which stops at the
identity of each string (strings are immutable: nbclient replaces them, never edits them),
so it costs a walk over the cell's few dozen nodes, not its megabytes. The file is what
``nbformat.writes`` would make of the masked notebook (then a newline), without its
validation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from nbops.notebook.redact import Redactor

_DICT, _LIST, _END = object(), object(), object()
_SPLIT_MIMES = frozenset({"application/javascript", "image/svg+xml"})
_TRANSIENT = ("orig_nbformat", "orig_nbformat_minor", "signature")
# Stands for the cells in the serialized notebook; NUL never occurs in a cell's JSON unescaped.
_CELLS = "\0nbops-cells\0"
_SEPARATOR = b",\n  "


@dataclass
class _Cell:
    """One cell as last saved: what it was made of, its masked form and its bytes in the file."""

    leaves: list[Any]
    masked: dict[str, Any]
    data: bytes
    seen: dict[str, str] = field(default_factory=dict)


class NotebookArchive:
    """Writes a notebook to ``path`` again and again, with secrets masked."""

    def __init__(self, path: Path, redactor: Redactor) -> None:
        self.path = path
        self.redactor = redactor
        self.serialized = 0
        """Characters of cell JSON produced so far (what serializing has cost)."""
        self.written = 0
        """Bytes written to the file so far (what writing has cost)."""
        self._cells: list[_Cell] = []
        self._top: dict[str, Any] = {}
        self._top_seen: dict[str, str] = {}
        self._on_disk: tuple[bytes, list[_Cell], int] | None = None  # head, cells, file size

    def save(self, nb: NotebookNode) -> None:
        """Mask and write ``nb``; cells unchanged since the last save are reused as they were."""
        cells: list[_Cell] = []
        for index, cell in enumerate(nb.cells):
            leaves: list[Any] = []
            _leaves(cell, leaves)
            old = self._cells[index] if index < len(self._cells) else None
            if old is not None and old.leaves == leaves:
                cells.append(old)
                continue
            seen: dict[str, str] = {}
            masked = _mask(cell, self.redactor, old.seen if old else {}, seen)
            text = _dumps(_disk_form(masked)).replace("\n", "\n  ")
            self.serialized += len(text)
            cells.append(_Cell(leaves, masked, text.encode("utf-8"), seen))
        self._cells = cells
        seen = {}
        self._top = _mask({k: v for k, v in nb.items() if k != "cells"}, self.redactor, self._top_seen, seen)
        self._top_seen = seen
        self._write()

    def masked(self) -> NotebookNode:
        """The notebook as last saved (secrets masked), for exports such as the HTML page."""
        masked: NotebookNode = nbformat.from_dict({**self._top, "cells": [c.masked for c in self._cells]})  # type: ignore[no-untyped-call]
        return masked

    def _write(self) -> None:
        """Write the file from the first cell that changed on: cells before it are on disk already."""
        top = dict(self._top)
        metadata = top.get("metadata")
        if isinstance(metadata, dict):
            top["metadata"] = {k: v for k, v in metadata.items() if k not in _TRANSIENT}
        top["cells"] = [_CELLS] if self._cells else []
        head_text, _, tail_text = _dumps(top).partition(json.dumps(_CELLS))
        head, tail = head_text.encode("utf-8"), (tail_text + "\n").encode("utf-8")
        start, offset = 0, len(head)
        if self._on_disk is not None and self._on_disk[0] == head and self._size() == self._on_disk[2]:
            previous = self._on_disk[1]
            while start < min(len(previous), len(self._cells)) and previous[start] is self._cells[start]:
                offset += len(self._cells[start].data) + (len(_SEPARATOR) if start else 0)
                start += 1
        with self.path.open("r+b" if start else "wb") as out:
            if start:
                out.seek(offset)
            else:
                out.write(head)
            for index in range(start, len(self._cells)):
                if index:
                    out.write(_SEPARATOR)
                out.write(self._cells[index].data)
            out.write(tail)
            out.truncate()
            size = out.tell()
        self.written += size - offset if start else size
        self._on_disk = (head, list(self._cells), size)

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return -1


def _leaves(value: Any, out: list[Any]) -> None:
    """Everything ``value`` is made of, in order, with markers for its structure."""
    if isinstance(value, dict):
        out.append(_DICT)
        for key, item in value.items():
            out.append(key)
            _leaves(item, out)
        out.append(_END)
    elif isinstance(value, list | tuple):
        out.append(_LIST)
        for item in value:
            _leaves(item, out)
        out.append(_END)
    elif isinstance(value, str):
        out.append(value)
    else:  # numbers, booleans, None: by type too, as 1 == True
        out.append((type(value), value))


def _mask(value: Any, redactor: Redactor, known: dict[str, str], seen: dict[str, str]) -> Any:
    """``value`` as plain dicts and lists with every string masked, each new string once."""
    if isinstance(value, str):
        masked = seen.get(value)
        if masked is None:
            masked = known.get(value)
            if masked is None:
                masked = redactor.text(value)
            seen[value] = masked
        return masked
    if isinstance(value, dict):
        return {k: _mask(v, redactor, known, seen) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v, redactor, known, seen) for v in value]
    return value


def _disk_form(cell: dict[str, Any]) -> dict[str, Any]:
    """What nbformat writes for a cell: multi-line text as lists of lines, no transient metadata."""
    cell = dict(cell)
    if isinstance(cell.get("source"), str):
        cell["source"] = cell["source"].splitlines(True)
    metadata = cell.get("metadata")
    if isinstance(metadata, dict) and "trusted" in metadata:
        cell["metadata"] = {k: v for k, v in metadata.items() if k != "trusted"}
    if isinstance(cell.get("attachments"), dict):
        cell["attachments"] = {k: _split_bundle(v) for k, v in cell["attachments"].items()}
    if cell.get("cell_type") == "code" and isinstance(cell.get("outputs"), list):
        cell["outputs"] = [_split_output(o) for o in cell["outputs"]]
    return cell


def _split_output(output: Any) -> Any:
    if not isinstance(output, dict):
        return output
    kind = output.get("output_type")
    if kind in ("execute_result", "display_data") and isinstance(output.get("data"), dict):
        return {**output, "data": _split_bundle(output["data"])}
    if kind == "stream" and isinstance(output.get("text"), str):
        return {**output, "text": output["text"].splitlines(True)}
    return output


def _split_bundle(data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    return {
        k: v.splitlines(True) if isinstance(v, str) and (k.startswith("text/") or k in _SPLIT_MIMES) else v
        for k, v in data.items()
    }


def _dumps(value: Any) -> str:
    return json.dumps(
        value, indent=1, sort_keys=True, separators=(",", ": "), ensure_ascii=False, default=_bytes_as_text
    )


def _bytes_as_text(value: Any) -> str:
    """As nbformat's ``BytesEncoder``: base64 payloads that arrived as bytes."""
    if isinstance(value, bytes):
        return value.decode("ascii")
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
