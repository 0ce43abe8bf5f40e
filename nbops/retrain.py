"""The retraining gate as the commands run it: decide, record, move the aliases, alert.

``nbops run`` calls :func:`run_gate` once the gate's stage is sealed; the DAG's
``retrain_gate`` task runs ``nbops gate`` (:func:`gate_command`), which calls it too, and
``promote_champion`` (after Airflow's approval) runs ``nbops approve`` (:func:`approve_command`).
The decision itself is :mod:`nbops.tracking.gate`.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nbops import alerts
from nbops.context import ENV_APPROVER
from nbops.errors import InputError
from nbops.lock import fetch_lock
from nbops.spec import Pipeline, RetrainSpec, load_pipeline
from nbops.status import ExitCode
from nbops.storage import Store, layout, open_store
from nbops.tracking import gate, pipeline_run, query, tags
from nbops.tracking.gate import Decision, GateResult
from nbops.tracking.store import open_client, tracking_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass(frozen=True)
class GateOutcome:
    """What ``nbops gate`` or ``nbops approve`` prints and the exit code it ends with."""

    message: str
    exit_code: ExitCode
    result: GateResult | None
    """The decision made or approved; None when nothing awaited approval (``approve --promoted``)."""


def gate_command(pipeline_file: Path, run_id: str, promoted: str | None) -> GateOutcome:
    """``nbops gate``: run the gate for pipeline run ``run_id`` of the working tree's pipeline, or
    (``promoted``, a DAG's ``retrain_gate`` task) of the promoted pipeline with that lock sha256.

    Exit code: OK when it decided; NOTEBOOK when it could not (no version registered, a metric
    missing); SKIP in a DAG with ``approval: manual`` when the decision awaits no approval (the
    approval task is skipped).

    Raises:
        InputError: no `retrain:` block, a bad lock, or a pipeline never recorded.
        InfraError: a store cannot be used.
    """
    pipeline, _, uri = load_target(None if promoted else pipeline_file, promoted)
    result = run_gate(open_client(uri), pipeline, uri, run_id)
    if result.failed:
        return GateOutcome(describe(result), ExitCode.NOTEBOOK, result)
    manual = pipeline.spec.retrain is not None and pipeline.spec.retrain.approval == "manual"
    if promoted and manual and result.decision is not Decision.AWAITING_APPROVAL:
        skipped = "nbops gate: nothing awaits approval; the approval task is skipped."
        return GateOutcome(f"{describe(result)}\n{skipped}", ExitCode.SKIP, result)
    return GateOutcome(describe(result), ExitCode.OK, result)


def approve_command(pipeline_file: Path, run_id: str | None, reject: bool, promoted: str | None) -> GateOutcome:
    """``nbops approve``: approve (or ``reject``) the decision awaiting approval of run ``run_id``
    (default: the newest) of the working tree's pipeline; with ``promoted`` (the DAG's
    ``promote_champion`` task, after Airflow's approval), apply the approval to run ``run_id``,
    reporting a run whose gate kept the champion.

    Raises:
        InputError: nothing awaits approval, the champion moved since, or ``promoted`` without
            ``run_id`` or with ``reject``.
        InfraError: a store cannot be used.
    """
    pipeline, _, uri = load_target(None if promoted else pipeline_file, promoted)
    client = open_client(uri)
    if promoted:
        if not run_id or reject:
            raise InputError("--promoted needs --run-id and takes no --reject (Airflow's approval task rejects).")
        result = applied_approval(client, pipeline, uri, run_id)
    else:
        result = approve(client, pipeline, uri, run_id, reject=reject)
    message = (
        describe(result)
        if result
        else f"nbops approve: run {run_id}: nothing awaits approval (the gate kept the champion)."
    )
    return GateOutcome(message, ExitCode.OK, result)


def load_target(pipeline_file: Path | None, promoted: str | None) -> tuple[Pipeline, Store, str]:
    """The pipeline a gate command acts on, its artifact store and tracking URI: the working tree's
    pipeline file, or (in a DAG task) the promoted lock whose sha256 is given.

    Raises:
        InputError: neither or both given, or the lock is altered; InfraError: it is not published.
    """
    if (pipeline_file is None) == (promoted is None):
        raise InputError("give exactly one of a pipeline file and --promoted LOCK_SHA256.")
    if promoted is not None:
        store = open_store(Path.cwd())
        lock, path = fetch_lock(store, promoted)
        return lock.pipeline(path, store, stage=None), store, tracking_uri(layout.state_dir(Path.cwd()))
    assert pipeline_file is not None  # noqa: S101 - checked above
    pipeline = load_pipeline(pipeline_file)
    return pipeline, open_store(pipeline.root), tracking_uri(layout.state_dir(pipeline.root))


def retrain_of(pipeline: Pipeline) -> RetrainSpec:
    """The pipeline's ``retrain:`` block; InputError naming the file when it has none."""
    if pipeline.spec.retrain is None:
        raise InputError(
            f"{pipeline.path}: the pipeline declares no `retrain:` block (model, stage, metric, direction, "
            "min_improvement, approval), so there is no gate to run or approve."
        )
    return pipeline.spec.retrain


REDECIDE = 3
"""Decisions tried when concurrent gates keep moving the champion between a decision and its move."""


def run_gate(client: MlflowClient, pipeline: Pipeline, uri: str, run_id: str, alert: bool = True) -> GateResult:
    """Decide for pipeline run ``run_id``, record the decision, move the aliases and (with
    ``alert``) send the ``champion_change`` alert when the champion moved.

    Raises:
        InputError: no `retrain:` block, or the pipeline has never been recorded.
        InfraError: the tracking store cannot be used.
    """
    retrain = retrain_of(pipeline)
    experiment = _experiment(client, pipeline)
    parent = pipeline_run.find(client, experiment, run_id)
    for tries_left in reversed(range(REDECIDE)):
        result = gate.decide(client, retrain, experiment, run_id)
        try:
            gate.apply(client, result, parent)
            break
        except gate.ChampionMoved:  # a concurrent gate promoted first: judge against the new champion
            if not tries_left:
                raise
    if result.champion_changed and alert:
        _alert_change(pipeline, uri, experiment, run_id, parent, result)
    return result


def approve(client: MlflowClient, pipeline: Pipeline, uri: str, run_id: str | None, reject: bool = False) -> GateResult:
    """Approve (or reject) the decision awaiting approval of pipeline run ``run_id`` (default:
    the newest version awaiting approval), then record it and move the alias.

    Raises:
        InputError: nothing awaits approval there, or the champion moved since.
        InfraError: the tracking store cannot be used.
    """
    retrain = retrain_of(pipeline)
    experiment = _experiment(client, pipeline)
    if run_id is not None:
        parent = pipeline_run.find(client, experiment, run_id)
        if parent is None:
            raise InputError(f"{pipeline.path}: there is no run {run_id} of '{pipeline.name}' in the tracking store.")
        parent_tags = query.run_tags(client, parent)
        version = parent_tags.get(tags.GATE_VERSION)
        if not version:
            raise InputError(f"run {run_id} of '{pipeline.name}' has no gate decision (the gate did not run).")
    else:
        version, run_id = _newest_awaiting(client, retrain.model)
        parent = pipeline_run.find(client, experiment, run_id) if run_id else None
    who = os.environ.get(ENV_APPROVER, "").strip() or _login()
    result = gate.approve(client, retrain.model, str(version), who, reject=reject)
    gate.apply(client, result, parent)
    if result.champion_changed:
        _alert_change(pipeline, uri, experiment, run_id or "", parent, result)
    return result


def applied_approval(client: MlflowClient, pipeline: Pipeline, uri: str, run_id: str) -> GateResult | None:
    """What the DAG's ``promote_champion`` does once Airflow's approval was given: approve the run's
    decision if it awaits approval; None when it does not (the gate kept the champion)."""
    retrain_of(pipeline)
    experiment = _experiment(client, pipeline)
    parent = pipeline_run.find(client, experiment, run_id)
    if parent is None:
        raise InputError(f"there is no run {run_id} of '{pipeline.name}' in the tracking store.")
    decided = query.run_tags(client, parent)
    if decided.get(tags.GATE_DECISION) != Decision.AWAITING_APPROVAL.value:
        return None
    return approve(client, pipeline, uri, run_id)


def describe(result: GateResult) -> str:
    """The decision in one line for summaries and logs."""
    return f"gate {result.model}: {result.decision.value} ({result.reason.value}): {result.message}"


def _experiment(client: MlflowClient, pipeline: Pipeline) -> str:
    found = query.experiment_id(client, pipeline.name)
    if found is None:
        raise InputError(f"{pipeline.path}: '{pipeline.name}' has no runs in the tracking store yet; run it first.")
    return found


def _newest_awaiting(client: MlflowClient, model: str) -> tuple[str, str | None]:
    versions = query.versions(client, model)
    waiting = [v for v in versions if dict(v.tags).get(tags.GATE_DECISION) == Decision.AWAITING_APPROVAL.value]
    if not waiting:
        raise InputError(f"no version of '{model}' awaits approval; the gate decides after each run of its stage.")
    newest = max(waiting, key=lambda v: int(v.version))
    return str(newest.version), dict(newest.tags).get(tags.RUN_ID)


def _alert_change(
    pipeline: Pipeline, uri: str, experiment: str, run_id: str, parent: str | None, result: GateResult
) -> None:
    link = alerts.mlflow_link(uri, experiment, parent) if parent else None
    alerts.send(
        pipeline.spec.alerts,
        alerts.Alert(
            event="champion_change",
            title=f"{pipeline.name}: version {result.version} of {result.model} is the new champion",
            body=result.message + f". Rule: {result.rule}.",
            pipeline=pipeline.name,
            run_id=run_id or None,
            link=link,
        ),
    )


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
