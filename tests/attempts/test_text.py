"""An executed notebook as text: headers by source index, outputs, placeholders, errors, markers."""

from __future__ import annotations

from typing import Any

import nbformat
import pytest
from nbformat import NotebookNode

from nbops.attempts.text import NotebookText, first_line, output_lines, parse, plain, source_indices
from nbops.errors import InfraError
from nbops.status import StageStatus

v4: Any = nbformat.v4
RED_TRACEBACK = [
    "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
    "\x1b[0;31mZeroDivisionError\x1b[0m                         Traceback (most recent call last)",
    "Cell \x1b[0;32mIn[4], line 1\x1b[0m\n\x1b[0;32m----> 1\x1b[0m \x1b[38;5;241m1\x1b[39m\x1b[38;5;241m/\x1b[39m\x1b[38;5;241m0\x1b[39m",
    "\x1b[0;31mZeroDivisionError\x1b[0m: division by zero",
]


def ran(source: str, count: int | None, outputs: list[Any] | None = None, status: str = "completed") -> NotebookNode:
    cell = v4.new_code_cell(source, execution_count=count, outputs=outputs or [])
    cell.metadata["papermill"] = {"status": status, "end_time": "2026-12-04T00:00:00+00:00" if count else None}
    return cell


def executed(status: str | None = "failed", failed_cell: int | None = 4) -> NotebookNode:
    """Source cells 0..5 with Papermill's injected cell inserted after the parameters cell."""
    nb = v4.new_notebook()
    params = ran("alpha = 0.1", 1)
    params.metadata["tags"] = ["parameters"]
    injected = ran('# Parameters\nalpha = 0.5\nname = "x"\n', 2)
    injected.metadata["tags"] = ["injected-parameters"]
    figure = v4.new_output("display_data", data={"image/png": "iVBOR", "text/plain": "<Figure size 640x480>"})
    html = v4.new_output("execute_result", data={"text/html": "<b>x</b>"}, execution_count=3)
    printed = v4.new_output("stream", name="stdout", text="hello\n\x1b[1mbold\x1b[0m\n10%\r50%\r100%\n")
    skipped = v4.new_code_cell("plot(everything)")
    skipped.metadata["nbops"] = {"skipped": True}
    skipped.metadata["papermill"] = {"status": "pending"}
    error = v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero", traceback=RED_TRACEBACK)
    pending = v4.new_code_cell("print('after')")
    pending.metadata["papermill"] = {"status": "pending"}
    nb.cells = [
        params,  # source 0
        injected,  # no source index
        v4.new_markdown_cell("# Title"),  # source 1
        ran("\n\nimport math\nprint('hello')", 3, [printed, figure, html]),  # source 2
        skipped,  # source 3
        ran("1/0", 4, [error], status="failed"),  # source 4
        pending,  # source 5
    ]
    if status is not None:
        nb.metadata["nbops"] = {"status": status, "failed_cell": failed_cell, "error": "ZeroDivisionError"}
    return nb


@pytest.mark.unit
def test_cells_are_named_by_their_source_index_with_the_injected_cell_apart() -> None:
    nb = executed()
    assert source_indices(nb.cells) == [0, None, 1, 2, 3, 4, 5]
    text = NotebookText(nb).render()
    headers = [line for line in text.splitlines() if not line.startswith(" ")]
    assert headers == [
        "[0] In [1]: alpha = 0.1",
        '[injected parameters] In [2]: alpha = 0.5; name = "x"',
        "[2] In [3]: import math",
        "[3] skipped: plot(everything)",
        "[4] In [4]: 1/0  <-- failed here",
        "[5] not run: print('after')",
    ]
    assert "Title" not in text


@pytest.mark.unit
def test_outputs_are_text_images_placeholders_and_errors_without_colours() -> None:
    text = NotebookText(executed()).render()
    block = text.split("[2] In [3]: import math\n")[1].split("[3]")[0]
    assert block.splitlines() == ["    hello", "    bold", "    100%", "    [image/png]", "    [text/html]"]
    error = text.split("[4] In [4]: 1/0  <-- failed here\n")[1].split("[5]")[0].splitlines()
    assert error[0] == "    ZeroDivisionError: division by zero"
    assert "    ----> 1 1/0" in error
    assert "\x1b" not in text


@pytest.mark.unit
def test_the_failed_cell_is_found_through_the_source_index_not_the_position() -> None:
    # The record names source cell 2, which sits at position 3 (after the injected cell).
    view = NotebookText(executed(failed_cell=2))
    assert view.stopped_at == 3
    assert view.header(3).endswith("<-- failed here")
    assert not view.header(5).endswith("here")
    assert view.name(3) == "cell 2 (In [3])"


@pytest.mark.unit
def test_a_failing_injected_cell_is_found_by_papermill_s_mark() -> None:
    nb = executed(failed_cell=None)
    nb.cells[1].metadata["papermill"]["status"] = "failed"
    nb.cells[5].metadata["papermill"]["status"] = "completed"
    view = NotebookText(nb)
    assert view.stopped_at == 1
    assert view.name(1) == "the injected-parameters cell"
    assert view.summary().startswith("the injected-parameters cell raised")


@pytest.mark.unit
def test_the_summary_says_how_the_notebook_ended() -> None:
    assert NotebookText(executed()).summary() == "cell 4 (In [4]) raised ZeroDivisionError: division by zero"
    assert NotebookText(executed(status=None)).status is None
    assert "still running" in NotebookText(executed(status=None)).summary()
    succeeded = NotebookText(executed(status="succeeded", failed_cell=None))
    assert succeeded.status is StageStatus.SUCCEEDED and succeeded.summary() == "succeeded"
    assert "<--" not in succeeded.render()


@pytest.mark.unit
def test_a_running_notebook_is_settled_up_to_its_running_cell() -> None:
    nb = executed(status=None)
    nb.cells[3].metadata["papermill"] = {"status": "running", "end_time": None}
    view = NotebookText(nb)
    assert view.settled(0) == 3  # parameters, injected, markdown; then the running cell
    assert view.settled(3) == 3
    nb.cells[3].metadata["papermill"] = {"status": "completed", "end_time": "2026-12-04T00:00:01+00:00"}
    assert NotebookText(nb).settled(3) == 6  # the skipped cell, then the failed one; the pending one is not
    assert NotebookText(executed()).settled(0) == 7  # once ended, every cell


@pytest.mark.unit
def test_pieces() -> None:
    assert plain("\x1b[31mred\x1b[0m\r\n50%\r100%\r") == "red\n100%"
    assert first_line(["\n", "  x = 1\n", "y = 2"]) == "x = 1"
    assert len(first_line("x" * 500)) == 100
    assert output_lines(v4.new_output("error", ename="E", evalue="v", traceback=["E: v"])) == ["E: v"]
    assert output_lines(v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=1)) == ["42"]
    with pytest.raises(InfraError, match="not a readable notebook"):
        parse(b"{not json", "somewhere/output.ipynb")
