"""``nbops test --nbval``: the executed notebook's outputs against those stored in the source notebook.

Modeled on nbval's comparison (nbval's own is a method of its pytest item and needs a pytest
session, so it is written here for an executed notebook): streams of the same name are
coalesced, carriage returns and backspaces applied; each output is flattened into its keys
and MIME types, leaving out what differs from run to run (metadata, tracebacks, execution
counts, widget ids, images); values are compared per key, in order. Only code cells that
have stored outputs are compared (a notebook saved with cleared outputs compares nothing),
as are no cells tagged ``nbval-ignore-output`` or ``nbval-skip`` and no ``skip`` cells.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from nbops.notebook.tags import INJECTED, OUTPUT_IGNORED, cell_tags, is_skipped

SKIP_KEYS = frozenset(
    {
        "metadata",
        "traceback",
        "prompt_number",
        "output_type",
        "name",
        "execution_count",
        "transient",
        "application/vnd.jupyter.widget-view+json",
        "image/png",
        "image/jpeg",
        "image/svg+xml",
    }
)
"""What nbval leaves out by default, images included (renderings differ between machines)."""
_CARRIAGE_RETURN = re.compile(r"^.*\r(?=[^\n])", re.MULTILINE)
_BACKSPACE = re.compile("[^\\n]\\x08")  # a character, then a backspace


@dataclass(frozen=True)
class Mismatch:
    """One cell whose executed outputs differ from the stored ones."""

    cell: int
    """Index of the cell in the source notebook."""
    key: str
    """The output key or MIME type that differs (``stdout``, ``text/plain``, ``ename``...)."""
    expected: str
    actual: str

    def describe(self) -> str:
        """One paragraph: where, which key, both values (cut to a readable length)."""
        return (
            f"cell {self.cell}: {self.key} differs; stored: {_short(self.expected)!r}; "
            f"this run: {_short(self.actual)!r}"
        )


def compare(source: Any, executed: Any) -> list[Mismatch]:
    """The cells of ``source`` (a notebook as saved, outputs included) whose outputs ``executed``
    (the same notebook as a pipeline executed it) does not reproduce.

    Raises:
        ValueError: ``executed`` is not an execution of ``source`` (its cells do not line up).
    """
    ran = [c for c in executed.cells if INJECTED not in cell_tags(c)]
    if len(ran) != len(source.cells):
        raise ValueError(
            f"the executed notebook has {len(ran)} cells besides the parameters, the source {len(source.cells)}"
        )
    found: list[Mismatch] = []
    for index, (stored, fresh) in enumerate(zip(source.cells, ran, strict=True)):
        if stored.cell_type != "code" or not stored.get("outputs") or is_skipped(stored):
            continue
        if cell_tags(stored) & OUTPUT_IGNORED:
            continue
        found.extend(_compare_cell(index, stored.outputs, fresh.get("outputs", [])))
    return found


def _compare_cell(index: int, stored: list[Any], fresh: list[Any]) -> list[Mismatch]:
    expected, actual = _flatten(stored), _flatten(fresh)
    found = []
    for key in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(key, []), actual.get(key, [])
        if want != got:
            found.append(Mismatch(index, key, "\n".join(want) or "(none)", "\n".join(got) or "(none)"))
    return found


def _flatten(outputs: list[Any]) -> dict[str, list[str]]:
    """Each key (streams by name, data by MIME type) with its values in order."""
    flat: dict[str, list[str]] = defaultdict(list)
    for output in _coalesced(outputs):
        for key, value in output.items():
            if key in SKIP_KEYS:
                continue
            if key == "data":
                for mime, content in value.items():
                    if mime not in SKIP_KEYS:
                        flat[mime].append(_text(content))
            else:
                flat[key].append(_text(value))
    return dict(flat)


def _coalesced(outputs: list[Any]) -> list[dict[str, Any]]:
    """Streams of one name merged, ``\\r`` and ``\\b`` applied, a stream keyed by its name."""
    merged: list[dict[str, Any]] = []
    streams: dict[str, dict[str, Any]] = {}
    for output in outputs:
        if output.get("output_type") == "stream":
            name = output.get("name", "stdout")
            if name in streams:
                streams[name][name] += _text(output.get("text", ""))
            else:
                streams[name] = {name: _text(output.get("text", ""))}
                merged.append(streams[name])
        else:
            merged.append(dict(output))
    for name, stream in streams.items():
        text = stream[name]
        while True:
            shorter = _BACKSPACE.sub("", text)
            if shorter == text:
                break
            text = shorter
        stream[name] = _CARRIAGE_RETURN.sub("", text)
    return merged


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return value if isinstance(value, str) else repr(value)


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
