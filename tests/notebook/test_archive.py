from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from nbops.notebook.archive import NotebookArchive
from nbops.notebook.redact import Redactor

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-Value-4242"


def rich_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata.update({"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.metadata["orig_nbformat"] = 4  # transient: nbformat drops it when writing
    md = nbformat.v4.new_markdown_cell("# Title\nsome *text*")
    md.attachments = {"a.png": {"image/png": "iVBORw0KGgo=", "text/plain": "line 1\nline 2"}}
    code = nbformat.v4.new_code_cell("x = 1\nprint(x)", execution_count=3)
    code.metadata["trusted"] = True  # transient too
    code.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="a\nb\n"),
        nbformat.v4.new_output(
            "display_data",
            data={"text/plain": "<b>\nx", "text/html": "<b>x</b>\n<i>y</i>", "image/png": "iVBORw0KGgo=\n"},
        ),
        nbformat.v4.new_output("execute_result", data={"text/plain": "1\n2", "application/json": {"a": [1, 2]}}),
        nbformat.v4.new_output("error", ename="ValueError", evalue="bad", traceback=["line\n", "two"]),
    ]
    nb.cells = [md, code, nbformat.v4.new_raw_cell("raw\ntext")]
    return nb


def test_writes_what_nbformat_writes(tmp_path: Path) -> None:
    nb = rich_notebook()
    archive = NotebookArchive(tmp_path / "out.ipynb", Redactor())
    archive.save(nb)
    assert (tmp_path / "out.ipynb").read_text() == nbformat.writes(nb) + "\n"
    nb.cells = []
    archive.save(nb)
    assert (tmp_path / "out.ipynb").read_text() == nbformat.writes(nb) + "\n"


def test_each_save_matches_a_full_write_whatever_changed(tmp_path: Path) -> None:
    path = tmp_path / "out.ipynb"
    archive = NotebookArchive(path, Redactor())
    nb = rich_notebook()
    nb.cells += [nbformat.v4.new_code_cell(f"y = {i}") for i in range(4)]

    def check() -> None:
        archive.save(nb)
        assert path.read_text() == nbformat.writes(nb) + "\n"

    check()
    nb.cells[3].outputs.append(nbformat.v4.new_output("stream", name="stdout", text="é\n" * 1000))  # middle
    check()
    nb.metadata["papermill"] = {"duration": 1.5}  # metadata only
    check()
    nb.cells[-1].source = "y = 'last'"
    check()
    del nb.cells[4]  # fewer cells: the file gets shorter
    check()
    nb.cells.append(nbformat.v4.new_markdown_cell("appended"))
    check()
    path.write_text("changed by someone else")
    check()  # the file no longer is what was written: written whole again


def test_every_save_is_masked_and_changes_are_seen(tmp_path: Path) -> None:
    nb = rich_notebook()
    nb.metadata["note"] = f"connect with {SECRET}"
    archive = NotebookArchive(tmp_path / "out.ipynb", Redactor([SECRET]))
    archive.save(nb)
    code = nb.cells[1]
    code.outputs[0]["text"] = code.outputs[0]["text"] + f"the key is {SECRET}\n"  # a stream grows
    code.outputs.append(nbformat.v4.new_output("stream", name="stderr", text=f"again {SECRET}"))
    code.metadata["papermill"] = {"status": "completed"}
    archive.save(nb)
    text = (tmp_path / "out.ipynb").read_text()
    assert SECRET not in text
    assert "the key is ***" in text and "again ***" in text and "connect with ***" in text
    assert '"status": "completed"' in text
    masked = archive.masked()
    assert masked.cells[1].outputs[-1].text == "again ***"
    assert SECRET not in json.dumps(masked)


def test_cost_grows_with_what_changed_not_with_saves(tmp_path: Path) -> None:
    """Each cell is started, prints, completes, as Papermill saves it: twice per cell and
    once more at the end. Masking and serializing the whole notebook each time would cost
    about cells * (cells + 1) * size; here each output is masked and serialized once."""
    cells, size = 20, 100_000
    redactor = Redactor([SECRET])
    archive = NotebookArchive(tmp_path / "out.ipynb", redactor)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"print({i})") for i in range(cells)]
    archive.save(nb)
    total = 0
    for i, cell in enumerate(nb.cells):
        cell.metadata["papermill"] = {"status": "running"}
        archive.save(nb)
        text = f"{i:03d}" * (size // 3) + f" {SECRET}\n"
        total += len(text)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        cell.metadata["papermill"] = {"status": "completed"}
        archive.save(nb)
    archive.save(nb)
    assert redactor.scanned < 1.2 * total
    assert archive.serialized < 1.2 * total
    assert archive.written < 1.2 * total
    text = (tmp_path / "out.ipynb").read_text()
    assert SECRET not in text and text.count(" ***") == cells
