"""What ``nbops run`` was asked to do, checked before anything starts: the options, the stages
selected, their typed parameters, the stages forced, the run id and run date of a resumed run,
and the command that resumes one."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops import rundate
from nbops.errors import InputError, NbopsError, did_you_mean, format_problems
from nbops.graph import MONITOR_STAGE, descendants, topological_order
from nbops.notebook.overrides import parse_assignments, validate_overrides
from nbops.notebook.parameters import ParameterSchema
from nbops.spec import Pipeline
from nbops.stage.contract import coerce_overrides, load_contract
from nbops.stage.points import point_problems
from nbops.storage import Store, layout

RETRY_DELAY_S = 2.0
"""First wait before retrying an attempt locally; doubled each time (Airflow's default is 300 s)."""
RUN_DATE_FILE = "run_date"
"""Beside a run's logs: the run date it started with, so that resuming it resolves ``${run_date}`` the same."""
DRIFT_TRIGGER = "drift"
"""The trigger recorded for a run the drift monitor started: every stage re-runs (the reuse key
cannot see that the world drifted)."""


@dataclass(frozen=True)
class RunOptions:
    """What ``nbops run`` was asked to do."""

    pipeline_file: Path
    stages: tuple[str, ...] = ()
    from_stage: str | None = None
    params: tuple[str, ...] = ()
    jobs: int | None = None
    run_id: str | None = None
    retry_delay: float = RETRY_DELAY_S
    run_date: str | None = None
    """What ``${run_date}`` resolves to (YYYY-MM-DD); default: a resumed run's own, else today (UTC)."""
    monitor: bool = False
    """Run the pipeline's monitor notebook (``monitor:``) as the run's only stage, named ``monitor``."""
    trigger: str = "nbops run"
    """What started the run, as recorded (``nbops run``, ``nbops monitor``, ``drift``)."""
    force: tuple[str, ...] = ()
    """Stages to run even when a completed attempt could be reused, with their descendants;
    ``*`` for every stage."""
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Typed parameter values by stage, between the spec's and ``params`` (``nbops test``'s
    ``test_parameters``)."""
    alerts: bool = True
    """Send the spec's alerts (``nbops test`` sends none)."""
    first_point_only: bool = False
    """Run a swept stage on its first point only (``nbops test``)."""
    hints: bool = True
    """End with the command that shows the run (``nbops ui``) or resumes it (not for a throwaway store)."""
    progress: str = "auto"
    """How running stages' cells are shown: ``live`` (redrawn in place), ``plain`` (lines),
    ``off``, or ``auto`` (live when stderr is a terminal, else plain)."""


def select_stages(
    pipeline: Pipeline, stages: tuple[str, ...], from_stage: str | None, monitor: bool = False
) -> list[str]:
    """The stages to run, in topological order (the monitor alone for a monitor run)."""
    if monitor:
        pipeline.stage(MONITOR_STAGE)
        return [MONITOR_STAGE]
    graph = pipeline.needs()
    asked = [("--stage", s) for s in stages] + ([("--from", from_stage)] if from_stage else [])
    unknown = [f"{flag} {s}: unknown stage '{s}'{did_you_mean(s, graph)}" for flag, s in asked if s not in graph]
    if unknown:
        header = f"{pipeline.path}: {len(unknown)} unknown stage(s); the stages are {', '.join(graph)}:"
        raise InputError(format_problems(header, unknown))
    chosen = set(stages)
    if from_stage:
        chosen |= {from_stage} | descendants(graph, [from_stage])
    order = topological_order(graph)
    return [s for s in order if s in chosen] if chosen else order


def checked_params(
    pipeline: Pipeline,
    selected: list[str],
    items: tuple[str, ...],
    run_date: str | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, object]]:
    """Typed overrides per stage; every selected stage's contract checked, every problem reported."""
    raw = parse_assignments(list(items))
    stages = list(pipeline.spec.stages)
    known = f" (stages: {', '.join(stages)})"
    problems = [
        f"-p {s}.*: stage '{s}' is not part of this run"
        if s in stages
        else f"-p {s}.*: unknown stage '{s}'{did_you_mean(s, stages) or known}"
        for s in raw
        if s not in selected
    ]
    result: dict[str, dict[str, object]] = {}
    for name in selected:
        try:
            contract = load_contract(pipeline, name, run_date=run_date)
            given = dict((overrides or {}).get(name, {}))
            typed = {**given, **coerce_overrides(contract.schema, raw.get(name, {}), contract.where, name)}
            given = rundate.resolve({**contract.stage.parameters, **typed}, run_date or rundate.today())
            validate_overrides(contract.schema, given, contract.where)
            problems += sweep_problems(pipeline, name, raw.get(name, {}), contract.schema)
            result[name] = typed
        except NbopsError as exc:
            problems.append(str(exc))
    if problems:
        raise InputError(format_problems(f"{pipeline.path}: nothing was run; {len(problems)} problem(s):", problems))
    return result


def sweep_problems(pipeline: Pipeline, stage: str, raw: Mapping[str, str], schema: ParameterSchema) -> list[str]:
    """A swept stage's problems: ``-p`` on a swept parameter, a point its notebook (``schema``) refuses."""
    resolved = pipeline.stage(stage)
    static = resolved.static_points()
    if not static:  # not swept, or swept over a list read at run time
        return []
    sweep = "grid" if resolved.grid is not None else "foreach"
    problems = [
        f"-p {stage}.{name}: '{name}' is swept by stages.{stage}.{sweep} ({len(static)} points); change the "
        f"{sweep} in {pipeline.path.name}, or give -p only for parameters the sweep leaves alone"
        for name in raw
        if name in resolved.sweep_keys
    ]
    try:
        point_problems(schema, stage, static, f"{pipeline.path}: stages.{stage}.{sweep}")
    except NbopsError as exc:
        problems.append(str(exc))
    return problems


def forced(pipeline: Pipeline, options: RunOptions, selected: list[str]) -> set[str]:
    """The stages ``--force`` names (``*``: all; a drift-triggered run: all) with their descendants."""
    force = options.force
    if "*" in force or options.trigger == DRIFT_TRIGGER:
        return set(selected)
    graph = pipeline.needs()
    unknown = [f"--force {s}: unknown stage '{s}'{did_you_mean(s, graph)}" for s in force if s not in graph]
    if unknown:
        raise InputError(format_problems(f"{pipeline.path}: {len(unknown)} unknown stage(s):", unknown))
    return set(force) | descendants(graph, list(force)) if force else set()


def run_id_of(store: Store, pipeline: Pipeline, options: RunOptions) -> str:
    """The run's id: given, the latest run when resuming (``--stage``/``--from``), else a new one."""
    partial = bool(options.stages or options.from_stage)
    fresh = (layout.MONITOR_RUN_PREFIX if options.monitor else "") + layout.new_run_id()
    return options.run_id or (store.latest_run_key(pipeline.name) if partial else None) or fresh


def run_date_of(store: Store, pipeline: Pipeline, options: RunOptions, run_id: str) -> str:
    """What ``${run_date}`` stands for: given, a resumed run's own (noted beside its logs), else today."""
    noted = layout.run_dir(store.local_root, pipeline.name, run_id) / ".logs" / RUN_DATE_FILE
    if options.run_date:
        return options.run_date
    try:
        return rundate.parse(noted.read_text(encoding="utf-8"), str(noted))
    except (OSError, NbopsError):
        return rundate.today()


def reused_attempts(store: Store, pipeline: Pipeline, run_id: str, selected: list[str]) -> list[str]:
    """``stage#attempt`` of the completed attempts of this run that a resumed run builds on."""
    from nbops.storage.manifest import read_manifest

    found = []
    for stage in pipeline.spec.stages:
        done = None if stage in selected else store.completed(pipeline.name, run_id, stage)
        if done is not None:
            found.append(f"{stage}#{read_manifest(done).attempt}")
    return found


def resume_command(options: RunOptions, run_id: str, stage: str, program: str = "nbops") -> str:
    """The command that re-runs ``run_id`` from ``stage``, with the same overrides (``program``: how
    the shell calls nbops)."""
    parts = [program, "run", str(options.pipeline_file), "--run-id", run_id, "--from", stage]
    parts += [a for p in options.params for a in ("-p", p)]
    return shlex.join(parts)
