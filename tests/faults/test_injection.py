"""Property tests: no parameter name or value turns into code, and no spec text turns into
a traceback.

The injected cell is checked the way the stage command checks it, and independently here:
parsed by ``ast`` it must be nothing but ``name = <literal>`` statements whose literals
evaluate (without executing anything) to exactly the given values.
"""

from __future__ import annotations

import ast
import math
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbops.errors import InputError
from nbops.notebook.execute import parameterize
from nbops.notebook.overrides import safe_name_problem, validate_overrides
from nbops.notebook.parameters import Param, ParameterSchema
from nbops.notebook.tags import INJECTED, cell_tags
from nbops.spec import load_pipeline
from tests.conftest import notebook

pytestmark = pytest.mark.unit

PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True).filter(
    lambda n: safe_name_problem(n) is None
)


def injected_statements(params: dict[str, Any]) -> list[ast.stmt]:
    schema = ParameterSchema(
        cell_index=0, params=tuple(Param(name=n, kind="any", nullable=True, default=None) for n in params)
    )
    clean = validate_overrides(schema, params, "prop.ipynb")
    nb = notebook([("\n".join(f"{n} = None" for n in params) or "pass", ["parameters"]), ("y = 1", [])])
    result = parameterize(nb, clean, "prop.ipynb")
    cells = [c for c in result.cells if INJECTED in cell_tags(c)]
    assert len(cells) == 1
    return ast.parse(cells[0].source).body


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@PROFILE
@given(st.dictionaries(identifiers, json_values, min_size=1, max_size=5))
def test_injected_cell_only_assigns_the_given_values(params: dict[str, Any]) -> None:
    statements = injected_statements(params)
    bound: dict[str, Any] = {}
    for stmt in statements:
        assert isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
        target = stmt.targets[0]
        assert isinstance(target, ast.Name)
        bound[target.id] = ast.literal_eval(stmt.value)  # raises on anything that is not a literal
    assert bound.keys() == params.keys()
    assert all(same(bound[n], params[n]) for n in params), (bound, params)


@PROFILE
@given(st.text(min_size=1, max_size=30), json_values)
def test_names_that_are_not_safe_identifiers_are_refused(name: str, value: Any) -> None:
    schema = ParameterSchema(cell_index=0, params=(Param(name="x", kind="any", nullable=True, default=None),))
    if name == "x":
        return
    with pytest.raises(InputError):
        validate_overrides(schema, {name: value}, "prop.ipynb")


@PROFILE
@given(st.text(alphabet=string.printable, max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_spec_loader_rejects_junk_with_input_error(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = Path(tmp_path_factory.mktemp("spec")) / "pipeline.yaml"
    path.write_text(text, encoding="latin-1")
    try:
        load_pipeline(path)
    except InputError as exc:
        assert str(path) in str(exc)


@PROFILE
@given(st.binary(min_size=1, max_size=400))
def test_notebook_reader_rejects_junk_bytes_with_input_error(
    tmp_path_factory: pytest.TempPathFactory, raw: bytes
) -> None:
    from nbops.notebook.reader import parse_notebook

    path = Path(tmp_path_factory.mktemp("nb")) / "junk.ipynb"
    try:
        parse_notebook(raw, path)
    except InputError as exc:
        assert str(path) in str(exc)


def test_the_check_itself_catches_code_in_an_injected_cell() -> None:
    """The independent check above can fail: a call hidden in a value is not a literal."""
    with pytest.raises(ValueError):
        ast.literal_eval(ast.parse("x = __import__('os').system('true')").body[0].value)  # type: ignore[attr-defined]
