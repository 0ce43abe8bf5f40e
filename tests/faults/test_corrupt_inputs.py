"""Corrupt inputs stop a run before anything starts: exit 2, the file named, the line where
known, and no traceback."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Project

pytestmark = pytest.mark.integration

VALID = {
    "cells": [{"cell_type": "code", "metadata": {}, "source": "x = 1", "outputs": [], "execution_count": None}],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def _no_kernelspec() -> str:
    nb = json.loads(json.dumps(VALID))
    del nb["metadata"]["kernelspec"]
    return json.dumps(nb)


CASES = {
    "truncated_json": (json.dumps(VALID)[:-40], "nb/s.ipynb", ["invalid JSON at line 1, column"]),
    "invalid_json": ('{"cells": [}', "nb/s.ipynb", ["invalid JSON at line 1, column 12"]),
    "nbformat_3": (json.dumps({**VALID, "nbformat": 3, "nbformat_minor": 0}), "nb/s.ipynb", ["nbformat"]),
    "not_a_notebook": (json.dumps({"hello": "world"}), "nb/s.ipynb", ["s.ipynb"]),
    "binary_junk": ("\x00\xff\x13 binary", "nb/s.ipynb", ["s.ipynb"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_corrupt_notebook_exits_2_naming_the_file(project: Project, name: str) -> None:
    text, _, expected = CASES[name]
    (project.root / "nb" / "s.ipynb").write_bytes(text.encode("latin-1"))
    project.write_spec({"name": "corrupt", "stages": {"s": {"notebook": "nb/s.ipynb"}}})
    result = project.nbops("run", "pipeline.yaml")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "s.ipynb" in result.stderr
    for fragment in expected:
        assert fragment in result.stderr, result.stderr
    assert not project.attempts("corrupt", "s")


def test_missing_kernelspec_runs_on_the_python_kernel(project: Project) -> None:
    """Documented rule: stages always run on the stage environment's python3 kernel."""
    (project.root / "nb" / "s.ipynb").write_text(_no_kernelspec())
    project.write_spec({"name": "corrupt", "stages": {"s": {"notebook": "nb/s.ipynb"}}})
    result = project.nbops("run", "pipeline.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\x00\x01\x02\xff\xfe junk", "not valid YAML"),
        (b"name: x\nstages:\n  a: {notebook: nb/a.ipynb\n", "line"),
        (b"- just\n- a list\n", "expected a mapping"),
        (b"name: Bad Name\nstages: {}\n", "pipeline.yaml:1:"),  # FILE:LINE: field: message
    ],
)
def test_corrupt_spec_exits_2_naming_the_file(project: Project, content: bytes, fragment: str) -> None:
    project.pipeline.write_bytes(content)
    result = project.nbops("run", "pipeline.yaml")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "pipeline.yaml" in result.stderr
    assert fragment in result.stderr, result.stderr
