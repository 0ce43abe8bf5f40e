from __future__ import annotations

from pathlib import Path

import pytest

from nbops.errors import InputError
from nbops.notebook.reader import read_notebook
from tests.conftest import FILES

pytestmark = pytest.mark.unit


def test_reads_and_hashes_exact_bytes() -> None:
    loaded = read_notebook(FILES / "params.ipynb")
    import hashlib

    assert loaded.sha256 == hashlib.sha256((FILES / "params.ipynb").read_bytes()).hexdigest()
    assert loaded.node.cells[0].metadata.tags == ["parameters"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "notebook not found"),
        (b'{"cells": [', "invalid JSON at line 1"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"a": 1}', "no 'cells' list"),
        (b'{"cells": [{"cell_type": "code"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}', "not a valid"),
    ],
)
def test_bad_notebooks_name_the_file(tmp_path: Path, content: bytes | None, fragment: str) -> None:
    path = tmp_path / "bad.ipynb"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=fragment) as info:
        read_notebook(path)
    assert str(path) in str(info.value)
