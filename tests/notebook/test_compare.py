"""`nbops test --nbval`'s comparison of executed outputs with stored ones, as nbval compares them."""

from __future__ import annotations

import nbformat
import pytest

from nbops.notebook.compare import compare

pytestmark = pytest.mark.unit


def cell(source: str, outputs: list[dict[str, object]], tags: list[str] | None = None) -> nbformat.NotebookNode:
    made = nbformat.v4.new_code_cell(source, outputs=[nbformat.from_dict(o) for o in outputs])
    if tags:
        made.metadata["tags"] = tags
    return made


def stream(text: str, name: str = "stdout") -> dict[str, object]:
    return {"output_type": "stream", "name": name, "text": text}


def result(text: str, count: int = 1) -> dict[str, object]:
    return {"output_type": "execute_result", "execution_count": count, "metadata": {}, "data": {"text/plain": text}}


def notebook(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def executed(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """As a pipeline ran it: Papermill's injected cell after the first (parameters) cell."""
    injected = cell("n = 5", [], tags=["injected-parameters"])
    return notebook(cells[0], injected, *cells[1:])


def test_equal_outputs_match_whatever_the_counts_metadata_and_stream_chunks() -> None:
    stored = notebook(cell("n = 3", [], ["parameters"]), cell("print(1); 2", [stream("a\nb\n"), result("2", 7)]))
    ran = executed(
        cell("n = 3", [], ["parameters"]), cell("print(1); 2", [stream("a\n"), stream("b\n"), result("2", 2)])
    )
    assert compare(stored, ran) == []


def test_a_different_value_names_the_source_cell_and_the_key() -> None:
    stored = notebook(cell("n = 3", [], ["parameters"]), cell("x", [result("3")]), cell("print(n)", [stream("3\n")]))
    ran = executed(cell("n = 3", [], ["parameters"]), cell("x", [result("3")]), cell("print(n)", [stream("5\n")]))
    (found,) = compare(stored, ran)
    assert (found.cell, found.key, found.expected, found.actual) == (2, "stdout", "3\n", "5\n")
    assert "cell 2: stdout differs" in found.describe()


def test_cells_without_stored_outputs_or_tagged_to_ignore_are_not_compared() -> None:
    stored = notebook(
        cell("n = 3", [], ["parameters"]),
        cell("print(n)", []),
        cell("print(n)", [stream("3\n")], ["nbval-ignore-output"]),
        cell("import time; time.time()", [result("1.0")], ["skip"]),
    )
    ran = executed(
        cell("n = 3", [], ["parameters"]),
        cell("print(n)", [stream("5\n")]),
        cell("print(n)", [stream("5\n")]),
        cell("import time; time.time()", []),
    )
    assert compare(stored, ran) == []


def test_carriage_returns_apply_and_images_are_left_out() -> None:
    png = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "AAAA", "text/plain": "<Figure>"}}
    other = {**png, "data": {"image/png": "BBBB", "text/plain": "<Figure>"}}
    stored = notebook(cell("n = 1", [], ["parameters"]), cell("bar", [stream("100%\nac\n"), png]))
    ran = executed(cell("n = 1", [], ["parameters"]), cell("bar", [stream("10%\r50%\r100%\nab\x08c\n"), other]))
    assert compare(stored, ran) == []


def test_an_error_where_none_was_stored_differs() -> None:
    error = {"output_type": "error", "ename": "ValueError", "evalue": "bad", "traceback": ["..."]}
    stored = notebook(cell("n = 1", [], ["parameters"]), cell("f()", [result("1")]))
    ran = executed(cell("n = 1", [], ["parameters"]), cell("f()", [error]))
    keys = {m.key for m in compare(stored, ran)}
    assert keys == {"text/plain", "ename", "evalue"}


def test_a_notebook_that_does_not_line_up_is_refused() -> None:
    stored = notebook(cell("n = 1", [], ["parameters"]), cell("x", []))
    with pytest.raises(ValueError, match="cells besides the parameters"):
        compare(stored, executed(cell("n = 1", [], ["parameters"])))
