"""A sweep's points (nbops.sweep) and the spec's sweep keys: order, ids that do not depend on the
index, labels, and every way a sweep can be written wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from nbops.spec import PipelineSpec
from nbops.sweep import Point, grid_points, list_points, point_id, swept_keys, unit

pytestmark = pytest.mark.unit


def test_a_grid_is_every_combination_with_the_last_key_varying_fastest() -> None:
    points = grid_points({"C": [0.1, 1.0, 10.0], "penalty": ["l1", "l2"]})
    assert [p.index for p in points] == list(range(6))
    assert [dict(p.parameters) for p in points][:3] == [
        {"C": 0.1, "penalty": "l1"},
        {"C": 0.1, "penalty": "l2"},
        {"C": 1.0, "penalty": "l1"},
    ]
    assert points[3].label("train") == "train[3] C=1.0 penalty=l2"
    assert Point(0, {}).label("train") == "train[0]"
    assert Point(1, {"cols": ["a", "b"]}).describe() == 'cols=["a", "b"]'


def test_a_point_id_is_its_parameters_digest_whatever_its_index_or_key_order() -> None:
    narrow = grid_points({"C": [1.0, 10.0]})
    wide = grid_points({"C": [0.1, 1.0, 10.0]})
    assert [p.id for p in narrow] == [p.id for p in wide[1:]]  # widening keeps the old points' ids
    assert narrow[0].index != wide[1].index
    assert point_id({"a": 1, "b": 2}) == point_id({"b": 2, "a": 1}) != point_id({"a": 1, "b": 3})
    assert len(point_id({})) == 12
    assert unit("train", None) == "train" and unit("train", "abc") == "train/point-abc"


def test_an_explicit_list_keeps_its_order_and_its_keys() -> None:
    points = list_points([{"region": "north"}, {"region": "south", "min_rows": 50}])
    assert [p.to_json()["parameters"] for p in points] == [{"region": "north"}, {"region": "south", "min_rows": 50}]
    assert swept_keys(points) == ["region", "min_rows"]


def _spec(train: dict[str, Any]) -> PipelineSpec:
    stages = {"prep": {"notebook": "p.ipynb"}, "train": {"notebook": "t.ipynb", "needs": ["prep"], **train}}
    return PipelineSpec.model_validate({"name": "x", "stages": stages})


def test_the_spec_resolves_a_sweep_and_its_keys() -> None:
    grid = _spec({"grid": {"C": [1, 2], "penalty": ["l1"]}, "max_parallel": 3}).resolved("train")
    assert grid.swept and grid.sweep_keys == ("C", "penalty") and grid.max_parallel == 3
    assert [p.label("train") for p in grid.static_points() or []] == [
        "train[0] C=1 penalty=l1",
        "train[1] C=2 penalty=l1",
    ]
    listed = _spec({"foreach": [{"C": 1}, {"penalty": "l2"}]}).resolved("train")
    assert listed.sweep_keys == ("C", "penalty") and len(listed.static_points() or []) == 2
    later = _spec({"foreach_from": {"stage": "prep", "file": "sets.json"}}).resolved("train")
    assert later.swept and later.static_points() is None and later.sweep_keys == ()
    assert not _spec({}).resolved("train").swept and _spec({}).resolved("train").static_points() is None


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"grid": {}}, "a grid names at least one parameter"),
        ({"grid": {"C": []}}, "grid parameter(s) C have no values"),
        ({"grid": {"C": [1, 1]}}, "grid parameter(s) C list a value twice"),
        ({"foreach": []}, "foreach lists at least one parameter set"),
        ({"foreach": [{"C": 1}, {"C": 1}]}, "foreach lists the same parameter set twice"),
        ({"grid": {"C": [1]}, "foreach": [{"C": 1}]}, "give at most one of grid, foreach and foreach_from"),
        ({"max_parallel": 2}, "max_parallel applies to a swept stage only"),
        ({"foreach_from": {"stage": "other", "file": "a.json"}}, "foreach_from.stage 'other' must be in needs"),
        ({"foreach_from": {"stage": "prep", "file": "../a.json"}}, "must be a path relative to the stage's outputs"),
        ({"grid": {"C": [1]}, "max_parallel": 0}, "greater than or equal to 1"),
    ],
)
def test_a_sweep_written_wrong_is_refused_saying_why(train: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _spec(train)


def test_a_foreach_from_that_reads_a_swept_stage_is_a_spec_problem_at_its_line(tmp_path: Path) -> None:
    from nbops.spec import check_spec

    spec = {
        "name": "x",
        "stages": {
            "prep": {"notebook": "p.ipynb", "grid": {"n": [1, 2]}},
            "train": {"notebook": "t.ipynb", "needs": ["prep"], "foreach_from": {"stage": "prep", "file": "s.json"}},
        },
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    (problem,) = check_spec(path).problems
    assert (
        problem
        == f"{path}:14: stages.train.foreach_from.stage: stage 'prep' is swept itself; read a stage with one output"
    )


def test_a_foreach_from_list_the_store_cannot_give_fails_the_stage_with_the_store_s_exit_code() -> None:
    from nbops.errors import InfraError, InputError
    from nbops.runner.state import StageRun
    from nbops.runner.units import refuse_pending
    from nbops.status import StageState

    unreadable, refused = StageRun("train", sweep_pending=True), StageRun("fit", sweep_pending=True)
    refuse_pending(unreadable, InfraError("s3://b: unreachable"))
    refuse_pending(refused, InputError("sets.json: not a list"))
    assert (unreadable.state, unreadable.exit_code, unreadable.message) == (StageState.FAILED, 3, "s3://b: unreachable")
    assert (refused.state, refused.exit_code) == (StageState.FAILED, 2)
