"""The points of a swept stage (DESIGN §17): the spec's grid or list, or at run time the JSON list an
upstream stage wrote to the store (``foreach_from``); and the completed points of a run. The
notebook's contract checks them in :mod:`nbops.stage.points`."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbops.context import ENV_FIRST_POINT_ONLY
from nbops.errors import InputError
from nbops.spec import Pipeline
from nbops.storage.base import Store
from nbops.storage.layout import MONITOR_RUN_PREFIX
from nbops.storage.lineage import attempt_that_ran
from nbops.sweep import Point, list_points, unit

MAX_POINTS = 10_000
"""A sweep larger than this is refused (Airflow's ``max_map_length`` defaults to 1024; raise it too)."""


def points_of(pipeline: Pipeline, stage: str, store: Store | None = None, run_id: str | None = None) -> list[Point]:
    """Every point of ``stage`` in sweep order; ``[]`` when the stage is not swept. A ``foreach_from``
    sweep reads its list from the upstream stage's completed attempt in run ``run_id``.

    Raises:
        InputError: a ``foreach_from`` list that is missing, not a JSON list of objects, empty or
            too long, or whose upstream stage has not completed in the run.
    """
    resolved = pipeline.stage(stage)
    static = resolved.static_points()
    if static is not None:
        return static
    source = resolved.foreach_from
    if source is None:
        return []
    if store is None or run_id is None:
        raise InputError(f"stage '{stage}': its points come from stage '{source.stage}' at run time (foreach_from)")
    done = store.completed(pipeline.name, run_id, source.stage)
    if done is None:
        raise InputError(
            f"stage '{stage}' sweeps over {source.file} written by stage '{source.stage}', which has no completed "
            f"attempt in run {run_id}; run it first (nbops run --run-id {run_id} --from {source.stage})."
        )
    path = attempt_that_ran(store, pipeline.name, source.stage, done)[0] / "outputs" / source.file
    where = f"{path} (foreach_from of stage '{stage}')"
    try:
        sets: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{where}: stage '{source.stage}' wrote no such file to its outputs.") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{where}: not a JSON list of parameter sets ({exc}).") from None
    if not isinstance(sets, list) or not all(isinstance(s, dict) for s in sets):
        raise InputError(f"{where}: expected a JSON list of objects (parameter sets), got {type(sets).__name__}.")
    if not sets or len(sets) > MAX_POINTS:
        raise InputError(f"{where}: {len(sets)} parameter sets; a sweep has 1 to {MAX_POINTS}.")
    return list_points(sets)


def point_at(pipeline: Pipeline, stage: str, index: int | None, store: Store, run_id: str) -> Point | None:
    """The point a stage attempt runs: None for a stage that is not swept.

    Raises:
        InputError: a swept stage without a point index, an index out of range, or a point given
            to a stage that is not swept.
    """
    points = points_of(pipeline, stage, store, run_id)
    if not points:
        if index is not None:
            raise InputError(f"stage '{stage}' is not swept (no grid, foreach or foreach_from); --point {index}")
        return None
    if index is None:
        raise InputError(
            f"stage '{stage}' is swept over {len(points)} points; name one with --point 0..{len(points) - 1}"
        )
    if not 0 <= index < len(points):
        raise InputError(f"stage '{stage}': --point {index} is out of range; its sweep has points 0..{len(points) - 1}")
    return points[index]


def merged(params: Mapping[str, Any], point: Point | None) -> dict[str, Any]:
    """A point's parameters over the stage's others (``-p`` on a swept key is refused before)."""
    return {**params, **(point.parameters if point is not None else {})}


def completed_points(
    store: Store, pipeline: Pipeline, run_id: str, stage: str
) -> tuple[list[tuple[Point, Path]], list[int]]:
    """The completed attempts of each point of swept ``stage`` in run ``run_id`` (for a reused one: the
    attempt that ran), in point order, and the indices of the points with none. A ``foreach_from``
    list not written yet counts as its first point missing."""
    try:
        points = points_of(pipeline, stage, store, run_id)
    except InputError:
        return [], [0]
    if os.environ.get(ENV_FIRST_POINT_ONLY) == "1":  # nbops test ran the first point only
        points = points[:1]
    found, missing = [], []
    for point in points:
        done = store.completed(pipeline.name, run_id, unit(stage, point.id))
        if done is None:
            missing.append(point.index)
        else:
            found.append((point, done))
    return found, missing


def swept_outputs(store: Store, pipeline: Pipeline, stage: str) -> list[tuple[dict[str, Any], Path]] | None:
    """``(parameters, outputs)`` of every point of swept ``stage`` in the newest run that completed them
    all (monitor runs left out), or None: what ``nbops.input_dirs`` reads interactively."""
    base = store.local_root / "runs" / pipeline.name
    mirrored = [p.name for p in base.iterdir() if p.is_dir()] if base.is_dir() else []
    newest = store.latest_run_key(pipeline.name)
    for run in dict.fromkeys([*([newest] if newest else []), *sorted(mirrored, reverse=True)]):
        if run.startswith(MONITOR_RUN_PREFIX):
            continue
        found, missing = completed_points(store, pipeline, run, stage)
        if found and not missing:
            ran = [(p, attempt_that_ran(store, pipeline.name, unit(stage, p.id), done)[0]) for p, done in found]
            return [(dict(p.parameters), path / "outputs") for p, path in ran]
    return None
