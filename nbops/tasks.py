"""The commands only a promoted pipeline's DAG tasks run: ``nbops close-run``, ``nbops drift-check`` and
``nbops sweep-points``.

A task runs in the deployment's working directory, which holds the artifact store and the
tracking store (``$NBOPS_ARTIFACT_ROOT`` and ``$MLFLOW_TRACKING_URI`` override them), and names
the promoted pipeline by its lock sha256. Each entry point here finds those stores, calls the
module that owns the work (:mod:`nbops.provenance`, :mod:`nbops.monitor`) and returns what the
command prints and the exit code it ends with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from nbops.monitor import TriggerCheck, drift_check
from nbops.provenance import AirflowRun, Closed, close_promoted_run
from nbops.retrain import load_target
from nbops.status import ExitCode
from nbops.storage import layout, open_store
from nbops.tracking.store import tracking_uri


@dataclass(frozen=True)
class ClosedRun:
    """What ``nbops close-run`` prints (on stderr) and its exit code."""

    message: str
    closed: Closed
    exit_code: ExitCode = ExitCode.OK
    """0 whatever the stages did: the run's outcome is in its record."""


@dataclass(frozen=True)
class DriftCheck:
    """What ``nbops drift-check`` prints and its exit code."""

    message: str
    exit_code: ExitCode
    check: TriggerCheck


def close_run_command(promoted: str, run_id: str, airflow_json: str) -> ClosedRun:
    """The DAG's last task: archive and close the MLflow record of pipeline run ``run_id`` of the
    promoted pipeline whose lock sha256 is ``promoted``; ``airflow_json`` is the DAG run
    (``dag_id``, ``run_id``, ``logical_date``, ``conf``) as the DAG renders it.

    Raises:
        InputError: ``airflow_json`` is not the DAG's object, or the lock is unknown or altered.
        InfraError: the record cannot be written.
    """
    here = Path.cwd()
    store = open_store(here)
    uri = tracking_uri(layout.state_dir(here))
    closed = close_promoted_run(store, uri, promoted, run_id, AirflowRun.from_json(airflow_json))
    lines = [f"  {stage}: {outcome}" for stage, outcome in closed.stages.items()]
    if closed.orphans:
        lines.append(f"closed {len(closed.orphans)} stage record(s) left open as KILLED")
    lines.append(f"nbops close-run: run {run_id} {closed.outcome} (MLflow run {closed.parent_run_id})")
    return ClosedRun("\n".join(lines), closed)


def drift_check_command(promoted: str, run_id: str) -> DriftCheck:
    """The monitor DAG's ``drift_trigger`` task: check monitor run ``run_id`` of the promoted
    pipeline against its trigger (recording it, and alerting when it holds).

    Exit code: OK when the trigger holds (the task's asset event schedules the training DAG),
    SKIP when it does not (the task is skipped), NOTEBOOK when the monitor notebook logged no
    such metric (a failure, never a quiet day).

    Raises:
        InputError: no `monitor:` block, a bad lock, or the run has no completed monitor attempt.
        InfraError: a store cannot be used.
    """
    pipeline, store, uri = load_target(None, promoted)
    check = drift_check(store, pipeline, uri, run_id)
    if check.value is None:
        code = ExitCode.NOTEBOOK
    else:
        code = ExitCode.OK if check.holds else ExitCode.SKIP
    return DriftCheck(f"nbops drift-check: {check.message}", code, check)


XCOM_DIR = Path("/airflow/xcom")
"""Where a pod's ``return.json`` is read from by the pod operator's XCom sidecar (``do_xcom_push``)."""


@dataclass(frozen=True)
class SweepPoints:
    """What ``nbops sweep-points`` prints: one pod name per point, the list its mapped task expands over."""

    message: str
    names: list[str]
    exit_code: ExitCode = ExitCode.OK


def sweep_points_command(promoted: str, stage: str, run_id: str, pod_name: str) -> SweepPoints:
    """The task before a ``foreach_from`` stage's mapped task: read the parameter sets its upstream stage
    wrote in run ``run_id``, check them against the notebook, and give one pod name per point (the
    map index is the point's index). In a pod the list is also written for the XCom sidecar.

    Raises:
        InputError: the list is missing or bad, or a point's parameters are refused.
        InfraError: a store cannot be used.
    """
    from nbops.stage.points import runtime_points

    pipeline, store, _ = load_target(None, promoted)
    points = runtime_points(pipeline, stage, store, run_id, f"lock {promoted[:12]}: stages.{stage}.foreach_from")
    names = [f"{pod_name}-{p.index}" for p in points]
    if XCOM_DIR.is_dir():
        (XCOM_DIR / "return.json").write_text(json.dumps(names), encoding="utf-8")
    described = "\n".join(f"  {p.label(stage)}" for p in points)
    return SweepPoints(f"{described}\nnbops sweep-points: stage '{stage}' sweeps {len(points)} point(s)", names)


__all__ = [
    "ClosedRun",
    "DriftCheck",
    "SweepPoints",
    "close_run_command",
    "drift_check_command",
    "sweep_points_command",
]
