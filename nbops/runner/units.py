"""What the local runner schedules: one unit per unswept stage, one per point of a swept stage
(DESIGN §17), and the rules that join them: a unit is ready once every unit of its stage's
upstream stages is done; a ``foreach_from`` stage is one placeholder until its upstream stage has
written the list, then its points."""

from __future__ import annotations

from collections.abc import Mapping

from nbops.errors import NbopsError
from nbops.runner.state import StageRun
from nbops.spec import Pipeline
from nbops.stage.points import runtime_points
from nbops.status import StageState
from nbops.storage import Store
from nbops.sweep import Point

Units = dict[str, StageRun]
"""The run's units by key: ``train`` for an unswept stage, ``train[3]`` for a point."""


def key(stage: str, point: Point) -> str:
    """A point's key among the run's units: ``train[3]``."""
    return f"{stage}[{point.index}]"


def units_of(pipeline: Pipeline, selected: list[str], first_point_only: bool = False) -> Units:
    """The units of the selected stages, in their order; ``first_point_only``: a sweep's first point."""
    units: Units = {}
    for stage in selected:
        resolved = pipeline.stage(stage)
        static = resolved.static_points()
        if not resolved.swept:
            units[stage] = StageRun(stage)
        elif static is None:  # foreach_from: known once the upstream stage has written the list
            units[stage] = StageRun(stage, sweep_pending=True)
        else:
            units.update(_points(stage, static[:1] if first_point_only else static))
    return units


def _points(stage: str, points: list[Point]) -> Units:
    return {key(stage, p): StageRun(key(stage, p), stage=stage, point=p) for p in points}


def upstream(units: Mapping[str, StageRun], graph: Mapping[str, tuple[str, ...]], st: StageRun) -> list[StageRun]:
    """The units of ``st``'s upstream stages that this run schedules."""
    needs = set(graph[st.stage])
    return [u for u in units.values() if u.stage in needs]


def ready(units: Mapping[str, StageRun], graph: Mapping[str, tuple[str, ...]], st: StageRun) -> bool:
    """Whether every upstream unit of ``st`` is done."""
    return all(u.state.done for u in upstream(units, graph, st))


def expand(
    units: Units, st: StageRun, pipeline: Pipeline, store: Store, run_id: str, first_point_only: bool = False
) -> Units:
    """The units with the placeholder ``st`` of a ``foreach_from`` stage replaced by its points, read
    from the list its upstream stage wrote and checked against the notebook's contract.

    Raises:
        InputError: the list is missing or bad, or a point's parameters are refused.
        InfraError: the store cannot be read.
    """
    points = runtime_points(pipeline, st.stage, store, run_id, f"{pipeline.path}: stages.{st.stage}.foreach_from")
    expanded: Units = {}
    for name, unit in units.items():
        expanded.update(_points(st.stage, points[:1] if first_point_only else points) if unit is st else {name: unit})
    return expanded


def expand_ready(
    units: Units,
    graph: Mapping[str, tuple[str, ...]],
    pipeline: Pipeline,
    store: Store,
    run_id: str,
    first_point_only: bool = False,
) -> tuple[Units, list[StageRun]]:
    """The units with every ``foreach_from`` placeholder whose upstream stages are done replaced by its
    points; and the placeholders refused (their list missing or bad, or unreadable), marked failed."""
    refused = []
    for st in list(units.values()):
        if not st.sweep_pending or st.state is not StageState.PENDING or not ready(units, graph, st):
            continue
        try:
            units = expand(units, st, pipeline, store, run_id, first_point_only)
        except NbopsError as exc:
            refuse_pending(st, exc)
            refused.append(st)
    return units, refused


def at_limit(units: Mapping[str, StageRun], pipeline: Pipeline | None, st: StageRun) -> bool:
    """Whether ``st`` is a point of a sweep that already runs ``max_parallel`` points."""
    limit = pipeline.stage(st.stage).max_parallel if pipeline is not None and st.point is not None else None
    return limit is not None and st.state is not StageState.RUNNING and running(units, st.stage) >= limit


def running(units: Mapping[str, StageRun], stage: str) -> int:
    """How many units of ``stage`` run now."""
    return sum(1 for u in units.values() if u.stage == stage and u.state is StageState.RUNNING)


def stage_complete(units: Mapping[str, StageRun], stage: str) -> bool:
    """Whether every unit of ``stage`` is done (the run slots then hear of the stage once)."""
    mine = [u for u in units.values() if u.stage == stage]
    return bool(mine) and all(u.state.done for u in mine)


def refuse_pending(st: StageRun, exc: NbopsError) -> None:
    """A ``foreach_from`` placeholder whose list could not be read fails with the error's own exit code
    (2 for a missing or refused list, 3 for a store that cannot be read)."""
    st.state, st.exit_code, st.message, st.tries = StageState.FAILED, int(exc.exit_code), str(exc), 1
