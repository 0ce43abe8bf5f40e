from __future__ import annotations

from typing import Any

import pytest

from nbops.errors import InputError
from nbops.notebook.parameters import parse_parameters
from tests.conftest import notebook

pytestmark = pytest.mark.unit


def schema_of(source: str) -> Any:
    return parse_parameters(notebook([("import os", []), (source, ["parameters"])]).cells, "nb.ipynb")


def test_types_defaults_and_help() -> None:
    schema = schema_of(
        'as_of: str = "2026-01-01"  # batch date\n'
        "n = 200  # trees\n"
        "rate: float = 1  # int literal widened\n"
        "flag = False\n"
        "cols: list[str] = ['a']\n"
        "opts = {'k': 1}\n"
        "limit: int | None = None  # optional\n"
        "anything = None\n"
    )
    assert schema.cell_index == 1
    by = {p.name: p for p in schema.params}
    assert (by["as_of"].kind, by["as_of"].default, by["as_of"].help) == ("str", "2026-01-01", "batch date")
    assert (by["n"].kind, by["n"].help) == ("int", "trees")
    assert by["rate"].kind == "float" and by["rate"].default == 1.0 and isinstance(by["rate"].default, float)
    assert by["flag"].kind == "bool"
    assert by["cols"].kind == "list" and by["opts"].kind == "dict"
    assert by["limit"].kind == "int" and by["limit"].nullable and by["limit"].type_label == "int | None"
    assert by["anything"].kind == "any"


def test_no_parameters_cell() -> None:
    schema = parse_parameters(notebook([("x = 1", [])]).cells, "nb.ipynb")
    assert schema.cell_index is None and schema.params == ()


def test_every_problem_listed_with_lines() -> None:
    with pytest.raises(InputError) as info:
        schema_of("import os\npath = os.getcwd()\nx: int = 'a'\ny: Foo = 1\nn = 1\nn = 2\n")
    message = str(info.value)
    assert "nb.ipynb, cell 1 (tagged 'parameters')" in message
    for fragment in (
        "line 1: only 'name = literal'",
        "line 2: the default of 'path' is not a literal",
        "line 3: the default of 'x' expects int",
        "line 4: unsupported annotation 'Foo'",
        "line 6: 'n' is assigned twice",
    ):
        assert fragment in message


def test_magics_are_not_python() -> None:
    with pytest.raises(InputError, match="line 1: not plain Python"):
        schema_of("%matplotlib inline\nx = 1")


def test_two_parameters_cells() -> None:
    cells = notebook([("a = 1", ["parameters"]), ("b = 1", ["parameters"])]).cells
    with pytest.raises(InputError, match="cells 0, 1 are all tagged 'parameters'"):
        parse_parameters(cells, "nb.ipynb")
