"""``nbops monitor``: run the drift monitor and, when its trigger holds, a retraining run.

The monitor notebook (``monitor:`` in the spec) runs as a recorded run of its own whose only
stage is ``monitor``; ``nbops.input_dir(stage)`` in it reads the outputs of the pipeline run
that trained the current champion (resolved through the registry's lineage). Its metric is
compared with ``monitor.trigger``; when the trigger holds, the ``drift`` alert goes out and a
retraining run of the whole pipeline starts for the same run date (``--dry-run`` only says
so). On Airflow the ``<name>_monitor`` DAG does the same with ``nbops drift-check``, which
emits the asset event the training DAG is scheduled on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from nbops import alerts, rundate
from nbops.errors import InputError, NbopsError
from nbops.graph import MONITOR_STAGE
from nbops.plugins.champion import ENV_CHAMPION_RUN
from nbops.runner.plan import DRIFT_TRIGGER
from nbops.runner.report import say
from nbops.runs import RunOptions, RunSummary, run
from nbops.spec import MonitorSpec, Pipeline, load_pipeline
from nbops.status import ExitCode
from nbops.storage import Store, layout, open_store
from nbops.storage.manifest import read_manifest
from nbops.tracking import pipeline_run, query, record, tags
from nbops.tracking.gate import champion_run_id
from nbops.tracking.store import open_client, tracking_uri


@dataclass(frozen=True)
class MonitorOptions:
    """What ``nbops monitor`` was asked to do."""

    pipeline_file: Path
    params: tuple[str, ...] = ()
    """``monitor.NAME=VALUE`` overrides of the monitor notebook's parameters."""
    run_date: str | None = None
    dry_run: bool = False
    jobs: int | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Typed values of the monitor notebook's parameters, between the spec's and ``params``."""
    alerts: bool = True
    champion_run: str | None = None
    """The pipeline run whose outputs to compare with, instead of the champion's (``nbops test``:
    its own run, whose gate may await approval)."""


@dataclass(frozen=True)
class TriggerCheck:
    """The monitor's metric against its trigger."""

    rule: str
    value: float | None
    holds: bool
    message: str


class MonitorOutcome(StrEnum):
    """How a monitor invocation ended."""

    NO_CHAMPION = "no_champion"
    FAILED = "failed"
    QUIET = "quiet"
    """The trigger did not hold."""
    DRY_RUN = "dry_run"
    """The trigger held; ``--dry-run`` started nothing."""
    RETRAINED = "retrained"
    """The trigger held and a retraining run ran (see its exit code)."""


@dataclass(frozen=True)
class MonitorResult:
    """What ``nbops monitor`` did."""

    outcome: MonitorOutcome
    exit_code: int
    message: str
    check: TriggerCheck | None = None
    monitor_run: RunSummary | None = None
    retrain_run: RunSummary | None = None


def monitor_of(pipeline: Pipeline) -> MonitorSpec:
    """The pipeline's ``monitor:`` block; InputError naming the file when it has none."""
    if pipeline.spec.monitor is None:
        raise InputError(
            f"{pipeline.path}: the pipeline declares no `monitor:` block (notebook, schedule, parameters, trigger)."
        )
    return pipeline.spec.monitor


def run_monitor(options: MonitorOptions) -> MonitorResult:
    """Run the monitor, compare, and start retraining when the trigger holds.

    Raises:
        InputError: no `monitor:` block, a bad override or run date.
        InfraError: a store cannot be used.
    """
    pipeline = load_pipeline(options.pipeline_file)
    spec = monitor_of(pipeline)
    retrain = pipeline.spec.retrain
    assert retrain is not None  # noqa: S101 - the spec requires `retrain:` with `monitor:`
    run_date = rundate.parse(options.run_date, "--run-date") if options.run_date else rundate.today()
    uri = tracking_uri(layout.state_dir(pipeline.root))
    client = open_client(uri)
    champion_run = options.champion_run or champion_run_id(client, retrain.model)
    if champion_run is None:
        return MonitorResult(
            MonitorOutcome.NO_CHAMPION,
            ExitCode.OK,
            f"'{retrain.model}' has no champion yet: nothing to monitor. Run the pipeline first (nbops run); "
            "its gate makes the first version champion.",
        )
    say(f"nbops monitor: the champion of '{retrain.model}' was trained by run {champion_run}")
    watched = _watch(options, run_date, champion_run)
    if watched.exit_code != ExitCode.OK:
        return MonitorResult(
            MonitorOutcome.FAILED, watched.exit_code, "the monitor notebook failed; nothing was started", None, watched
        )
    check = check_trigger(open_store(pipeline.root), pipeline, spec, watched.run_id)
    result_tags = _check_tags(check)
    if check.value is None or not check.holds or options.dry_run:
        record.set_tags(client, watched.parent_run_id, result_tags)
    if check.value is None:
        return MonitorResult(MonitorOutcome.FAILED, ExitCode.NOTEBOOK, check.message, check, watched)
    if not check.holds:
        return MonitorResult(MonitorOutcome.QUIET, ExitCode.OK, check.message, check, watched)
    if options.dry_run:
        message = f"{check.message}; --dry-run: no retraining run started (it would run for {run_date})"
        return MonitorResult(MonitorOutcome.DRY_RUN, ExitCode.OK, message, check, watched)
    if options.alerts:
        send_drift_alert(pipeline, uri, watched.experiment_id, watched.parent_run_id, watched.run_id, check)
    say(f"nbops monitor: {check.message}; starting a retraining run for {run_date}")
    retrained = _retrain(options, run_date)
    record.set_tags(client, watched.parent_run_id, {**result_tags, tags.MONITOR_RETRAIN_RUN: retrained.run_id})
    ended = "succeeded" if retrained.exit_code == ExitCode.OK else f"ended with exit {retrained.exit_code}"
    message = f"{check.message}; retraining run {retrained.run_id} {ended}, {len(retrained.ran)} stage(s) re-ran"
    return MonitorResult(MonitorOutcome.RETRAINED, retrained.exit_code, message, check, watched, retrained)


def _watch(options: MonitorOptions, run_date: str, champion_run: str) -> RunSummary:
    """The monitor run: the monitor notebook alone, reading the champion's run."""
    before = os.environ.get(ENV_CHAMPION_RUN)
    os.environ[ENV_CHAMPION_RUN] = champion_run
    try:
        return run(
            RunOptions(
                pipeline_file=options.pipeline_file,
                params=options.params,
                jobs=options.jobs,
                run_date=run_date,
                monitor=True,
                trigger="nbops monitor",
                overrides={MONITOR_STAGE: options.overrides},
                alerts=options.alerts,
                hints=options.alerts,
            )
        )
    finally:
        if before is None:
            os.environ.pop(ENV_CHAMPION_RUN, None)
        else:
            os.environ[ENV_CHAMPION_RUN] = before


def _retrain(options: MonitorOptions, run_date: str) -> RunSummary:
    """The retraining run the drift trigger starts: every stage re-runs (the reuse key cannot see
    that the world drifted), recorded with the trigger ``drift``."""
    return run(
        RunOptions(
            pipeline_file=options.pipeline_file,
            run_date=run_date,
            jobs=options.jobs,
            trigger=DRIFT_TRIGGER,
            alerts=options.alerts,
        )
    )


def _check_tags(check: TriggerCheck) -> dict[str, str]:
    """The trigger check as tags of the monitor run."""
    result_tags = {tags.MONITOR_TRIGGER: check.rule, tags.MONITOR_HOLDS: tags.flag(check.holds)}
    if check.value is not None:
        result_tags[tags.MONITOR_VALUE] = repr(check.value)
    return result_tags


def check_trigger(store: Store, pipeline: Pipeline, spec: MonitorSpec, run_id: str) -> TriggerCheck:
    """The monitor attempt of run ``run_id``: its metric against the trigger (from its sealed manifest).

    Raises:
        InputError: the run has no completed monitor attempt.
    """
    trigger = spec.trigger
    done = store.completed(pipeline.name, run_id, MONITOR_STAGE)
    if done is None:
        raise InputError(
            f"run {run_id} of '{pipeline.name}' has no completed monitor attempt under "
            f"{store.run_location(pipeline.name, run_id)}; the trigger cannot be checked."
        )
    metrics = read_manifest(done).metrics
    value = metrics.get(trigger.metric)
    rule = trigger.describe()
    if value is None:
        logged = ", ".join(sorted(metrics)) or "none"
        message = (
            f"the monitor notebook logged no metric '{trigger.metric}' (it logged: {logged}); log it in a "
            "`metrics` cell or fix monitor.trigger.metric"
        )
        return TriggerCheck(rule, None, False, message)
    holds = trigger.holds(value)
    verdict = "holds: retraining is called for" if holds else "does not hold"
    return TriggerCheck(rule, value, holds, f"{trigger.metric} = {value:.6g}; trigger {rule} {verdict}")


def drift_check(store: Store, pipeline: Pipeline, uri: str, run_id: str) -> TriggerCheck:
    """What the monitor DAG's ``drift_trigger`` task does: check, record, and alert when the trigger holds.

    Raises:
        InputError: no `monitor:` block or no completed monitor attempt in the run.
        InfraError: a store cannot be used.
    """
    spec = monitor_of(pipeline)
    check = check_trigger(store, pipeline, spec, run_id)
    client = open_client(uri)
    experiment_id = query.experiment_id(client, pipeline.name) or ""
    parent = pipeline_run.find(client, experiment_id, run_id) if experiment_id else None
    if parent:
        record.set_tags(client, parent, _check_tags(check))
    if check.holds:
        send_drift_alert(pipeline, uri, experiment_id, parent, run_id, check)
    return check


def send_drift_alert(
    pipeline: Pipeline, uri: str, experiment_id: str, parent: str | None, run_id: str, check: TriggerCheck
) -> None:
    """The ``drift`` alert (only logged when it cannot be sent)."""
    try:
        link = alerts.mlflow_link(uri, experiment_id, parent) if parent and experiment_id else None
    except NbopsError:
        link = None
    alerts.send(
        pipeline.spec.alerts,
        alerts.Alert(
            event="drift",
            title=f"{pipeline.name}: drift detected, retraining",
            body=check.message,
            pipeline=pipeline.name,
            run_id=run_id,
            link=link,
        ),
    )
