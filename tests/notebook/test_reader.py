from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nbops.errors import InputError
from nbops.notebook.reader import check_python, read_notebook
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


def write(tmp_path: Path, metadata: dict[str, Any]) -> Path:
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": [], "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_a_kernelspec_with_only_a_language_runs_on_python3(tmp_path: Path) -> None:
    loaded = read_notebook(FILES / "kernelspec_language_only.ipynb")
    assert loaded.node.metadata.kernelspec == {"language": "python", "name": "python3", "display_name": "Python 3"}
    check_python(loaded.node, loaded.path)
    assert loaded.raw == (FILES / "kernelspec_language_only.ipynb").read_bytes()  # hashed as it is on disk
    named = read_notebook(write(tmp_path, {"kernelspec": {"name": "conda-env-ml-py"}}))
    assert named.node.metadata.kernelspec.display_name == "conda-env-ml-py"


@pytest.mark.parametrize(
    ("metadata", "fragments"),
    [
        ({"kernelspec": {"name": "ir", "display_name": "R"}}, ["`metadata.kernelspec.name` is 'ir', a kernel for R"]),
        ({"kernelspec": {"name": "julia-1.9", "display_name": "Julia"}}, ["'julia-1.9', a kernel for Julia"]),
        ({"kernelspec": {"name": "bash", "display_name": "Bash"}}, ["'bash', a kernel for the shell"]),
        ({"kernelspec": {"name": "conda-env-stats-r", "display_name": "R"}}, ["'conda-env-stats-r', a kernel for R"]),
        ({"kernelspec": {"language": "R"}}, ["`metadata.kernelspec.language` is 'R'"]),
        ({"language_info": {"name": "julia"}}, ["`metadata.language_info.name` is 'julia'"]),
        (
            {"kernelspec": {"name": "ir", "display_name": "R", "language": "R"}, "language_info": {"name": "R"}},
            ["kernelspec.language` is 'R'", "language_info.name` is 'R'", "kernelspec.name` is 'ir'"],
        ),
        (
            {"kernelspec": {"name": "python3", "display_name": "Python 3"}, "language_info": {"name": "R"}},
            ["`metadata.language_info.name` is 'R'"],
        ),
    ],
)
def test_another_language_is_refused_naming_the_field(
    tmp_path: Path, metadata: dict[str, Any], fragments: list[str]
) -> None:
    path = write(tmp_path, metadata)
    loaded = read_notebook(path)
    with pytest.raises(InputError) as info:
        check_python(loaded.node, loaded.path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a Python notebook")
    for fragment in fragments:
        assert fragment in message


def test_the_r_notebook_of_the_failure_modes_is_refused() -> None:
    loaded = read_notebook(FILES / "kernelspec_other_language.ipynb")
    with pytest.raises(InputError, match=r"`metadata\.kernelspec\.name` is 'ir', a kernel for R"):
        check_python(loaded.node, loaded.path)


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        {"kernelspec": {"name": "python2", "display_name": "Python 2", "language": "python"}},
        {"kernelspec": {"name": "conda-env-ml-py", "display_name": "ml"}},
        {"kernelspec": {"name": "conda-root-py", "display_name": "root"}},
        {"kernelspec": {"name": ".venv", "display_name": ".venv"}},
        {"kernelspec": {"name": "my-project", "display_name": "My project"}},
        {"kernelspec": {"name": "pysparkkernel", "display_name": "PySpark"}},
        {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "Python"}},
        {"kernelspec": {"name": "x", "display_name": "x", "language": ""}, "language_info": {"name": "ipython3"}},
        {"language_info": {"name": "python", "version": "3.11.7"}},
    ],
)
def test_python_notebooks_pass(tmp_path: Path, metadata: dict[str, Any]) -> None:
    loaded = read_notebook(write(tmp_path, metadata))
    check_python(loaded.node, loaded.path)
