"""The HTML page of a :class:`~nbops.attempts.diff.RunDiff`: per stage a table of each differing
section and the notebook cells that differ, their added and removed lines coloured.

The page is self-contained and safe to open from anywhere: one inline ``<style>``, no scripts,
no links, no images, no remote loads (a Content-Security-Policy forbids them as a second line of
defence); every value from the store goes through :func:`html.escape`.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from nbops.attempts.diff_render import (
    SCHEMA,
    cell_heading,
    delta_text,
    line_class,
    number_text,
    param_text,
    parameter_change,
    side_text,
    upstream_text,
    value_text,
)
from nbops.attempts.diff_sections import CellChange, Change, InputChange, MetricChange, ParameterChange, Section
from nbops.errors import InputError
from nbops.storage.atomic import write_atomic

if TYPE_CHECKING:
    from nbops.attempts.diff import RunDiff, UnitDiff

GENERATOR = "nbops diff"
"""The page's ``<meta name="generator">``: a file that has it is a page nbops diff wrote."""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 76em; color: #1d2126; padding: 0 1em; }
h1 { font-size: 1.45em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin: 0; }
h3 { font-size: 1em; margin: 1em 0 .3em; } .note { font-weight: 400; color: #666; margin-left: .5em; }
.runs { color: #444; margin: 0 0 1em; }
table { border-collapse: collapse; margin: .3em 0; width: 100%; table-layout: fixed; }
th, td { text-align: left; vertical-align: top; padding: .25em .6em; border-bottom: 1px solid #e3e6ea; }
th { color: #555; font-weight: 600; }
th.name { width: 16em; } td { overflow-wrap: anywhere; }
code, pre { font: 12px/1.4 ui-monospace, monospace; }
.verdict { padding: .6em 1em; border-radius: 4px; font-weight: 600; }
.same { background: #e6f4ea; color: #1e6b34; } .differs { background: #fdecea; color: #a12622; }
section.stage { border: 1px solid #d8dce1; border-radius: 6px; padding: .6em 1em 1em; margin: 1em 0; }
section.stage > header { display: flex; gap: 1em; align-items: baseline; }
.badge { font-size: .85em; padding: .1em .5em; border-radius: 3px; }
p.sames { color: #555; margin: .8em 0 0; }
.cell { border: 1px solid #e3e6ea; border-radius: 4px; margin: .5em 0; }
.cell > .head { background: #f6f8fa; padding: .2em .6em; font-size: .9em; color: #444; }
.cell pre { margin: 0; padding: .3em 0; overflow-x: auto; white-space: pre-wrap; }
.cell pre span { display: block; padding: 0 .6em; }
.label { color: #888; font-size: .75em; padding: .3em .6em 0; text-transform: uppercase; letter-spacing: .04em; }
span.add { background: #e6ffec; } span.del { background: #ffebe9; } span.gap { color: #888; background: #f6f8fa; }
"""


def page(result: RunDiff) -> str:
    """The whole page."""
    title = f"nbops diff {result.pipeline}: {result.run_a} against {result.run_b}"
    differing = sum(1 for u in result.units if not u.same)
    verdict = "Nothing differs" if not differing else f"{differing} of {len(result.units)} stage(s) differ"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        f'<meta name="generator" content="{GENERATOR}"><meta name="schema" content="{SCHEMA}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>nbops diff {escape(result.pipeline)}</h1>",
        f'<p class="runs">A: run <code>{escape(result.run_a)}</code> &nbsp; B: run <code>{escape(result.run_b)}</code>'
        f" &nbsp; store <code>{escape(result.store)}</code></p>",
        f'<p class="verdict {"same" if not differing else "differs"}">{escape(verdict)}</p>',
    ]
    parts += [_unit(u) for u in result.units]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _unit(unit: UnitDiff) -> str:
    state = "same" if unit.same else "differs"
    parts = [
        f'<section class="stage" id="{escape("stage-" + unit.unit)}"><header>',
        f"<h2>stage {escape(unit.unit)}</h2>",
        f'<span class="badge {state}">{state}</span></header>',
        '<table><tr><th class="name">A</th><td>' + escape(side_text(unit.a)) + "</td></tr>",
        '<tr><th class="name">B</th><td>' + escape(side_text(unit.b)) + "</td></tr></table>",
    ]
    parts += [_section(s) for s in unit.sections if not s.same]
    same = [s.name for s in unit.sections if s.same]
    if same:
        parts.append(f'<p class="sames">Same: {escape(", ".join(same))}</p>')
    parts.append("</section>")
    return "\n".join(parts)


def _section(section: Section) -> str:
    note = f'<span class="note">{escape(section.note)}</span>' if section.note else ""
    parts = [f"<h3>{escape(section.name)}{note}</h3>"]
    if section.changes:
        head = '<tr><th class="name">name</th><th>A</th><th>B</th><th>change</th></tr>'
        parts.append("<table>" + head + "".join(_change_row(c) for c in section.changes) + "</table>")
    parts += [_cell(c) for c in section.cells]
    return "\n".join(parts)


def _change_row(change: Change) -> str:
    if isinstance(change, ParameterChange):
        cells = (change.name, param_text(change.a), param_text(change.b), parameter_change(change))
    elif isinstance(change, MetricChange):
        delta = delta_text(change) if change.delta is not None else ""
        cells = (change.name, number_text(change.a), number_text(change.b), delta)
    elif isinstance(change, InputChange):
        cells = (change.unit, upstream_text(change.a), upstream_text(change.b), "data differs")
    else:
        cells = (change.name, value_text(change.a), value_text(change.b), "")
    return "<tr>" + "".join(f"<td><code>{escape(c)}</code></td>" for c in cells) + "</tr>"


def _cell(cell: CellChange) -> str:
    parts = [f'<div class="cell"><div class="head">{escape(cell_heading(cell))}</div>']
    for label, lines in (("source", cell.source), ("outputs", cell.outputs)):
        if lines:
            body = "".join(
                f'<span class="{line_class(line)}">{escape(line.op)} {escape(line.text)}</span>' for line in lines
            )
            parts.append(f'<div class="label">{label}</div><pre>{body}</pre>')
    parts.append("</div>")
    return "".join(parts)


def write(path: Path, text: str) -> None:
    """Write the page to ``path``: a new file, or one an earlier ``nbops diff`` wrote (its generator
    meta says so), replaced whole; anything else there is never overwritten.

    Raises:
        InputError: ``path`` is a directory or another file the user has.
        InfraError: the file system refused the write.
    """
    marker = f'<meta name="generator" content="{GENERATOR}">'.encode()
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise InputError(f"--html {path}: exists and is not a regular file; name a new file for the page.")
    if path.exists():
        try:
            with path.open("rb") as fh:
                head = fh.read(4096)
        except OSError as exc:
            raise InputError(f"--html {path}: exists and cannot be read ({exc.strerror or exc}).") from None
        if marker not in head:
            raise InputError(
                f"--html {path}: exists and is not a page nbops diff wrote; it is left as it is. Name a new file, "
                "or remove it first."
            )
    write_atomic(path, text.encode("utf-8"))
