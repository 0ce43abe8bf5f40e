"""A swept stage's points checked against its notebook's parameters contract (DESIGN §17); where
the points come from is :mod:`nbops.storage.points`."""

from __future__ import annotations

from nbops import rundate
from nbops.errors import InputError, format_problems
from nbops.notebook.overrides import override_problems
from nbops.spec import Pipeline
from nbops.sweep import Point


def point_problems(pipeline: Pipeline, stage: str, points: list[Point], where: str) -> None:
    """Refuse points whose parameters the notebook's contract does not take, or not with those types.

    Raises:
        InputError: every problem of every point at once, each naming the point.
    """
    from nbops.stage.contract import load_contract

    schema = load_contract(pipeline, stage, run_date=rundate.current()).schema
    problems = []
    for point in points:
        _, refused = override_problems(schema, dict(point.parameters))
        problems += [f"{point.label(stage)}: {param}: {problem}" for param, problem in refused]
    if problems:
        raise InputError(
            format_problems(f"{where}: {len(problems)} problem(s) in the sweep of stage '{stage}':", problems)
        )
