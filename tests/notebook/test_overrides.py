from __future__ import annotations

import pytest

from nbops.errors import InputError
from nbops.notebook.overrides import (
    check_injected_source,
    coerce_text,
    parse_assignments,
    safe_name_problem,
    unknown_parameter,
    validate_overrides,
)
from nbops.notebook.parameters import ParameterSchema, parse_parameters
from tests.conftest import notebook

pytestmark = pytest.mark.unit


@pytest.fixture
def schema() -> ParameterSchema:
    cells = notebook(
        [("n: int = 1\nrate = 0.5\nname = 'a'\nok = True\nlimit: int | None = None\nxs = [1]", ["parameters"])]
    )
    return parse_parameters(cells.cells, "nb.ipynb")


def test_valid_overrides_are_conformed(schema: ParameterSchema) -> None:
    assert validate_overrides(schema, {"n": 3, "rate": 2, "limit": None}, "nb") == {"n": 3, "rate": 2.0, "limit": None}


def test_all_problems_at_once(schema: ParameterSchema) -> None:
    with pytest.raises(InputError) as info:
        validate_overrides(schema, {"nn": 1, "n": "3", "ok": 1, "__class__": 1, "rate": float("nan")}, "nb.ipynb")
    message = str(info.value)
    assert "5 parameter problem(s)" in message
    assert "unknown parameter 'nn'; did you mean 'n'?" in message
    assert "parameter 'n' expects int, got str" in message
    assert "parameter 'ok' expects bool" in message
    assert "'__class__' is a dunder name" in message
    assert "not representable as JSON" in message


def test_overrides_without_parameters_cell() -> None:
    schema = parse_parameters(notebook([("x = 1", [])]).cells, "nb.ipynb")
    with pytest.raises(InputError, match="no cell tagged 'parameters'"):
        validate_overrides(schema, {"x": 2}, "nb.ipynb")


@pytest.mark.parametrize(
    ("name", "bad"), [("ok", False), ("class", True), ("a-b", True), ("__x__", True), ("x;y", True)]
)
def test_safe_names(name: str, bad: bool) -> None:
    assert (safe_name_problem(name) is not None) is bad


def test_coerce_text_by_declared_type(schema: ParameterSchema) -> None:
    get = schema.get
    assert coerce_text(get("n"), "7") == 7  # type: ignore[arg-type]
    assert coerce_text(get("rate"), "1e-3") == 0.001  # type: ignore[arg-type]
    assert coerce_text(get("name"), "007") == "007"  # type: ignore[arg-type]
    assert coerce_text(get("ok"), "no") is False  # type: ignore[arg-type]
    assert coerce_text(get("limit"), "none") is None  # type: ignore[arg-type]
    assert coerce_text(get("xs"), "[1, 2]") == [1, 2]  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expects int"):
        coerce_text(get("n"), "seven")  # type: ignore[arg-type]


def test_parse_assignments() -> None:
    assert parse_assignments(["a.x=1", "a.y=b=c", "b.z="]) == {"a": {"x": "1", "y": "b=c"}, "b": {"z": ""}}
    with pytest.raises(InputError, match="'nodot=1' is not of the form"):
        parse_assignments(["nodot=1"])


def test_injected_source_must_match() -> None:
    check_injected_source('x = 1\nname = "a\\"b"', {"x": 1, "name": 'a"b'}, "nb")
    with pytest.raises(InputError, match="not an assignment"):
        check_injected_source("x = 1\nimport os", {"x": 1}, "nb")
    with pytest.raises(InputError, match="differ"):
        check_injected_source("x = 2", {"x": 1}, "nb")


def test_papermill_injection_roundtrip_of_hostile_strings() -> None:
    from nbops.notebook.execute import parameterize

    nb = notebook([("s = 'a'\nd = {}", ["parameters"])])
    values = {"s": 'x"; import os; os.system("echo pwned") #\n\\', "d": {'k"': [1, None, "é"]}}
    result = parameterize(nb, values, "nb")
    assert result.cells[1].metadata.tags == ["injected-parameters"]


def test_unknown_parameter_names_the_nearest_or_every_declared_one(schema: ParameterSchema) -> None:
    assert unknown_parameter(schema, "rtae") == "unknown parameter 'rtae'; did you mean 'rate'?"
    assert unknown_parameter(schema, "zzz") == "unknown parameter 'zzz' (declared: n, rate, name, ok, limit, xs)"
