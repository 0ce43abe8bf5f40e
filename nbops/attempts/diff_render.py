"""The text and the ``nbops.diff/1`` JSON document of a :class:`~nbops.attempts.diff.RunDiff`.

The text shows, per unit, only what differs, then one line naming the sections that are the
same. The JSON document holds everything (``schema`` ``nbops.diff/1``)::

    {"schema": "nbops.diff/1", "pipeline", "store", "a": RUN, "b": RUN, "same": bool,
     "units": [{"unit", "same", "a": SIDE | null, "b": SIDE | null,
                "sections": {NAME: {"same", "note", "changes": [...], "cells": [...]}}}]}

SIDE is ``{run, attempt, status, ran_run, ran_attempt, cached, location}``; ``sections`` is empty
for a unit that started in one run only. A change is the record of its section: parameters
``{name, a: {value, origin} | null, b}``, metrics ``{name, a, b, delta, relative}``, inputs
``{unit, a: {run, attempt, manifest_sha256, data_sha256} | null, b}``, any other ``{name, a, b}``.
A cell is ``{kind, a_index, b_index, cell_type, source: [[op, text]], outputs: [[op, text]]}``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from nbops.attempts.diff_sections import (
    CellChange,
    Change,
    InputChange,
    Line,
    MetricChange,
    Param,
    ParameterChange,
    Upstream,
)

if TYPE_CHECKING:
    from nbops.attempts.diff import RunDiff, UnitDiff
    from nbops.attempts.diff_read import Side

SCHEMA = "nbops.diff/1"
SHORT = 12
_WIDTH = 80


def to_json(result: RunDiff) -> str:
    """The ``nbops.diff/1`` document, indented."""
    doc = {
        "schema": SCHEMA,
        "pipeline": result.pipeline,
        "store": result.store,
        "a": result.run_a,
        "b": result.run_b,
        "same": result.same,
        "units": [_unit_json(u) for u in result.units],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str)


def _unit_json(unit: UnitDiff) -> dict[str, Any]:
    return {
        "unit": unit.unit,
        "same": unit.same,
        "a": _side_json(unit.a),
        "b": _side_json(unit.b),
        "sections": {
            s.name: {
                "same": s.same,
                "note": s.note,
                "changes": [_change_json(c) for c in s.changes],
                "cells": [_cell_json(c) for c in s.cells],
            }
            for s in unit.sections
        },
    }


def _side_json(side: Side | None) -> dict[str, Any] | None:
    return None if side is None else {**asdict(side), "cached": side.cached}


def _change_json(change: Change) -> dict[str, Any]:
    found = asdict(change)
    if isinstance(change, MetricChange):
        found.update(delta=change.delta, relative=change.relative)
    return found


def _cell_json(cell: CellChange) -> dict[str, Any]:
    found = asdict(cell)
    found["source"] = [[line.op, line.text] for line in cell.source]
    found["outputs"] = [[line.op, line.text] for line in cell.outputs]
    return found


# -- text -------------------------------------------------------------------------------------


def text(result: RunDiff) -> str:
    """Per unit, what differs, then the sections that are the same on one line."""
    differing = [u for u in result.units if not u.same]
    verdict = "nothing differs" if not differing else f"{len(differing)} of {len(result.units)} stage(s) differ"
    lines = [f"nbops diff {result.pipeline}: run {result.run_a} (A) against {result.run_b} (B): {verdict}"]
    for unit in result.units:
        lines += ["", *unit_lines(unit)]
    return "\n".join(lines) + "\n"


def unit_lines(unit: UnitDiff) -> list[str]:
    """A unit's heading, its differing sections, and the line of sections that are the same."""
    head = f"stage {unit.unit}: {'same' if unit.same else 'differs'}  (A {side_text(unit.a)}; B {side_text(unit.b)})"
    lines = [head]
    if unit.a is None or unit.b is None:
        return lines
    for section in unit.sections:
        if section.same:
            continue
        lines.append(f"  {section.name}" + (f"  ({section.note})" if section.note else ""))
        lines += [f"    {change_text(c)}" for c in section.changes]
        for cell in section.cells:
            lines.append(f"    {cell_heading(cell)}")
            lines += [f"      {line.op} {line.text}" for line in (*cell.source, *cell.outputs)]
    same = [s.name for s in unit.sections if s.same]
    if same:
        lines.append(f"  same: {', '.join(same)}")
    return lines


def side_text(side: Side | None) -> str:
    """``attempt 2 succeeded`` or ``attempt 1 cached, reuses attempt 1 of run R``; ``did not start``."""
    if side is None:
        return "did not start"
    text = f"attempt {side.attempt} {side.status}"
    if side.cached:
        text += f", reuses attempt {side.ran_attempt} of run {side.ran_run}"
    return text


def cell_heading(cell: CellChange) -> str:
    """``cell 3 (code) changed`` or ``cell 2 -> 3 (markdown) changed``; indexes of A, then B."""
    if cell.a_index is None or cell.b_index is None or cell.a_index == cell.b_index:
        index = cell.a_index if cell.a_index is not None else cell.b_index
        return f"cell {index} ({cell.cell_type}) {cell.kind}"
    return f"cell {cell.a_index} -> {cell.b_index} ({cell.cell_type}) {cell.kind}"


def change_text(change: Change) -> str:
    """One change on one line: ``name: A -> B`` with what explains it."""
    if isinstance(change, ParameterChange):
        return f"{change.name}: {param_text(change.a)} -> {param_text(change.b)}"
    if isinstance(change, MetricChange):
        return f"{change.name}: {number_text(change.a)} -> {number_text(change.b)}" + (
            f"  ({delta_text(change)})" if change.delta is not None else ""
        )
    if isinstance(change, InputChange):
        return f"{change.unit}: {upstream_text(change.a)} -> {upstream_text(change.b)}"
    return f"{change.name}: {value_text(change.a)} -> {value_text(change.b)}"


def param_text(param: Param | None) -> str:
    """``5 (run)``; ``absent``."""
    if param is None:
        return "absent"
    return f"{'null' if param.value is None else value_text(param.value)} ({param.origin})"


def parameter_change(change: ParameterChange) -> str:
    """``value``, ``origin``, ``value and origin``, ``only in A`` or ``only in B``."""
    if change.a is None or change.b is None:
        return "only in B" if change.a is None else "only in A"
    differs = [n for n in ("value", "origin") if getattr(change.a, n) != getattr(change.b, n)]
    return " and ".join(differs)


def number_text(value: float | None) -> str:
    return "absent" if value is None else f"{value:g}"


def delta_text(change: MetricChange) -> str:
    """``+4, +66.7%``."""
    delta, relative = change.delta, change.relative
    found = f"{delta:+g}" if delta is not None else ""
    return found + (f", {relative:+.1%}" if relative is not None else "")


def upstream_text(up: Upstream | None) -> str:
    """``attempt 1 of run R, data 1a2b3c4d5e6f``; ``absent``."""
    if up is None:
        return "absent"
    data = f"data {up.data_sha256[:SHORT]}" if up.data_sha256 else f"manifest {up.manifest_sha256[:SHORT]}"
    return f"attempt {up.attempt}" + (f" of run {up.run}" if up.run else "") + f", {data}"


def value_text(value: Any) -> str:
    """A value as JSON, a long hash cut to 12 characters, a long value cut for a line."""
    if value is None:
        return "absent"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:SHORT]
    found = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return found if len(found) <= _WIDTH else found[: _WIDTH - 3] + "..."


def line_class(line: Line) -> str:
    """The CSS class of a diff line: ``add``, ``del``, ``gap`` or ``ctx``."""
    return {"+": "add", "-": "del", "…": "gap"}.get(line.op, "ctx")
