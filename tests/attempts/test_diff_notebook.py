"""Notebooks compared cell by cell: volatile parts left out, cells aligned by nbdime."""

from __future__ import annotations

import base64
from typing import Any

import nbformat
import pytest

from nbops.attempts.diff_notebook import compare, lines_diff, load, normalised, outputs_text
from nbops.attempts.diff_sections import Line
from nbops.errors import InputError

pytestmark = pytest.mark.unit


def executed(cells: list[tuple[str, list[dict[str, Any]]]], *, run: int = 0) -> dict[str, Any]:
    """An executed notebook: an injected-parameters cell after the first, volatile parts that vary with ``run``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"duration": 1.5 + run}
    for i, (source, outputs) in enumerate(cells):
        cell = nbformat.v4.new_code_cell(source, execution_count=i + 1 + run)
        cell.id = f"cell-{i}-{run}"
        cell.metadata["papermill"] = {"start_time": f"2026-12-0{run + 1}T00:00:00Z"}
        cell.metadata["execution"] = {"iopub.status.busy": f"2026-12-0{run + 1}"}
        cell.outputs = [nbformat.from_dict(o) for o in outputs]
        nb.cells.append(cell)
    injected = nbformat.v4.new_code_cell(f"n = {run}")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(1, injected)
    return dict(nbformat.from_dict(nb))


def stream(text: str | list[str]) -> dict[str, Any]:
    return {"output_type": "stream", "name": "stdout", "text": text}


def widget(model: str) -> dict[str, Any]:
    data = {"text/plain": "HBox()", "application/vnd.jupyter.widget-view+json": {"model_id": model, "version_major": 2}}
    return {"output_type": "display_data", "data": data, "metadata": {"at": model}}


def test_run_to_run_noise_is_not_a_difference() -> None:
    cells = [("n = 1", []), ("print(n)", [stream("1\n")])]
    a = executed([*cells, ("bar()", [widget("m1")])], run=0)
    b = executed([*cells, ("bar()", [widget("m2")])], run=1)
    assert compare(a, b, outputs=True) == ()
    assert [c["source"] for c in normalised(a, outputs=True)["cells"]] == ["n = 1", "print(n)", "bar()"]


def test_outputs_stored_as_lists_of_lines_compare_as_text() -> None:
    lines = {"output_type": "execute_result", "data": {"text/plain": ["27"]}, "metadata": {}, "execution_count": 1}
    a = executed([("x", [stream(["a\n", "b\n"]), lines])])  # type: ignore[list-item]
    b = executed([("x", [stream("a\nb\n"), {**lines, "data": {"text/plain": "27"}}])], run=1)
    assert compare(a, b, outputs=True) == ()


def test_one_output_that_differs_is_one_changed_cell_with_source_indexes() -> None:
    a = executed([("n = 1", []), ("x = 2", []), ("print(n)", [stream("one\nsame\n")])])
    b = executed([("n = 1", []), ("x = 2", []), ("print(n)", [stream("two\nsame\n")])], run=1)
    (change,) = compare(a, b, outputs=True)
    assert (change.kind, change.a_index, change.b_index, change.cell_type) == ("changed", 2, 2, "code")
    assert change.source == ()
    assert change.outputs == (Line("-", "one"), Line("+", "two"), Line(" ", "same"))


def test_added_removed_and_edited_cells_in_sources() -> None:
    a = executed([("a = 1", []), ("b = 2", []), ("c = 3\nd = 4", [])])
    b = executed([("a = 1", []), ("c = 3\nd = 5", []), ("e = 5\nf = 6", [])])
    changes = compare(a, b, outputs=False)
    kinds = [(c.kind, c.a_index, c.b_index) for c in changes]
    assert ("removed", 1, None) in kinds and ("changed", 2, 1) in kinds and ("added", None, 2) in kinds
    edited = next(c for c in changes if c.kind == "changed")
    assert edited.source == (Line(" ", "c = 3"), Line("-", "d = 4"), Line("+", "d = 5"))
    added = next(c for c in changes if c.kind == "added")
    assert added.source == (Line("+", "e = 5"), Line("+", "f = 6"))


def test_long_cells_keep_context_around_changes() -> None:
    old = "\n".join(f"line {i}" for i in range(20))
    new = old.replace("line 10", "line ten")
    shown = lines_diff(old, new)
    assert shown[0] == Line("…", "8 unchanged lines")
    assert [line.text for line in shown if line.op == " "] == ["line 8", "line 9", "line 11", "line 12"]
    assert shown[-1] == Line("…", "7 unchanged lines")
    assert lines_diff(old, old) == ()


def test_outputs_as_text() -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    cell = {
        "outputs": [
            stream("hello\n"),
            {"output_type": "error", "ename": "ValueError", "evalue": "bad", "traceback": []},
            {"output_type": "execute_result", "data": {"text/plain": "42", "image/png": png}, "metadata": {}},
        ]
    }
    text = outputs_text(cell)
    assert text.splitlines()[:3] == [
        "hello",
        "ValueError: bad",
        "[image/png: 9 bytes, sha256 " + text.split("sha256 ")[1][:12] + "]",
    ]
    assert text.endswith("42")


def test_a_damaged_notebook_is_named() -> None:
    with pytest.raises(InputError, match=r"store/x\.ipynb: not a readable notebook"):
        load(b"{nope", "store/x.ipynb")
