"""A stage's contract: ``-p`` texts read by the notebook's declared types, each problem naming its key."""

from __future__ import annotations

import pytest

from nbops.errors import InputError
from nbops.notebook.parameters import ParameterSchema, parse_parameters
from nbops.stage.contract import coerce_overrides
from tests.conftest import notebook

pytestmark = pytest.mark.unit


@pytest.fixture
def schema() -> ParameterSchema:
    cells = notebook([("C: float = 1.0\nn_iter = 10\nxs = [1]", ["parameters"])])
    return parse_parameters(cells.cells, "train.ipynb")


def test_texts_are_read_by_the_declared_types(schema: ParameterSchema) -> None:
    assert coerce_overrides(schema, {"C": "0.5", "n_iter": "3", "xs": "[2]"}, "nb", "train") == {
        "C": 0.5,
        "n_iter": 3,
        "xs": [2],
    }


def test_every_problem_names_the_key_as_typed(schema: ParameterSchema) -> None:
    with pytest.raises(InputError) as info:
        coerce_overrides(schema, {"C": "abc", "n_itr": "3", "xs": '{"a": 1}', "n_iter": "nan"}, "nb", "train")
    message = str(info.value)
    assert "nb: 4 override problem(s)" in message
    assert "-p train.C: expects float, got 'abc'" in message
    assert "-p train.n_itr: unknown parameter 'n_itr'; did you mean 'n_iter'?" in message
    assert "-p train.xs: expects list, got dict" in message
    assert "-p train.n_iter: expects int, got 'nan'" in message
    assert "-p C:" not in message


def test_a_notebook_without_parameters_leaves_the_names_to_validate_overrides() -> None:
    schema = parse_parameters(notebook([("x = 1", [])]).cells, "nb.ipynb")
    assert coerce_overrides(schema, {"x": "2"}, "nb", "s") == {"x": "2"}
