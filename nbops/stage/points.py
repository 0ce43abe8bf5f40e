"""A swept stage's points checked against its notebook's parameters contract (DESIGN §17); where
the points come from is :mod:`nbops.storage.points`."""

from __future__ import annotations

from nbops import rundate
from nbops.errors import InputError, format_problems
from nbops.notebook.overrides import override_problems
from nbops.notebook.parameters import ParameterSchema
from nbops.spec import Pipeline
from nbops.storage import Store
from nbops.storage.points import points_of
from nbops.sweep import Point


def point_problems(schema: ParameterSchema, stage: str, points: list[Point], where: str) -> None:
    """Refuse points whose parameters the notebook's contract (``schema``) does not take, or not with
    those types.

    Raises:
        InputError: every problem of every point at once, each naming the point.
    """
    problems = []
    for point in points:
        _, refused = override_problems(schema, dict(point.parameters))
        problems += [f"{point.label(stage)}: {param}: {problem}" for param, problem in refused]
    if problems:
        raise InputError(
            format_problems(f"{where}: {len(problems)} problem(s) in the sweep of stage '{stage}':", problems)
        )


def runtime_points(pipeline: Pipeline, stage: str, store: Store, run_id: str, where: str) -> list[Point]:
    """The points of ``stage`` in run ``run_id`` (a ``foreach_from`` list as its upstream stage wrote
    it), checked against the notebook's contract: what the runner and the DAG's ``<stage>_points``
    task expand.

    Raises:
        InputError: the list is missing or bad, or a point's parameters are refused.
    """
    from nbops.stage.contract import load_contract

    points = points_of(pipeline, stage, store, run_id)
    point_problems(load_contract(pipeline, stage, run_date=rundate.current()).schema, stage, points, where)
    return points
