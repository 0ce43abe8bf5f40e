from __future__ import annotations

import pytest

from nbops.errors import InputError
from nbops.notebook.overrides import (
    FALSE_WORDS,
    NONE_WORDS,
    TRUE_WORDS,
    check_injected_source,
    coerce_text,
    override_problems,
    parse_assignments,
    safe_name_problem,
    unknown_parameter,
    validate_overrides,
)
from nbops.notebook.parameters import ParameterSchema, parse_parameters
from tests.conftest import ROOT, notebook

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


def test_a_bad_bool_lists_every_accepted_spelling(schema: ParameterSchema) -> None:
    ok = schema.get("ok")
    assert ok is not None
    for word in TRUE_WORDS:
        assert coerce_text(ok, word) is True and coerce_text(ok, f" {word.upper()} ") is True
    for word in FALSE_WORDS:
        assert coerce_text(ok, word) is False and coerce_text(ok, word.capitalize()) is False
    with pytest.raises(ValueError, match="expects bool, got 'maybe'") as info:
        coerce_text(ok, "maybe")
    assert "write true/yes/on/1 for True or false/no/off/0 for False (any case)" in str(info.value)
    assert set(TRUE_WORDS) == {"true", "yes", "on", "1"} and set(FALSE_WORDS) == {"false", "no", "off", "0"}


def test_the_readme_lists_the_accepted_spellings() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    bool_row = next(row for row in lines if row.startswith("| `bool` |"))
    none_row = next(row for row in lines if row.startswith("| any type with `\\| None` |"))
    assert all(f"`{word}`" in bool_row for word in (*TRUE_WORDS, *FALSE_WORDS))
    assert all(f"`{word}`" in none_row for word in NONE_WORDS)


def test_override_problems_are_told_by_name(schema: ParameterSchema) -> None:
    clean, problems = override_problems(schema, {"n": 2, "rtae": 1.0, "rate": "x", "class": 1})
    assert clean == {"n": 2}
    assert problems == [
        ("rtae", "unknown parameter 'rtae'; did you mean 'rate'?"),
        ("rate", "parameter 'rate' expects float, got str \"x\""),
        ("class", "'class' is a Python keyword"),
    ]
