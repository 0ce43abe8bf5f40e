"""The ``<name>_monitor`` DAG: the drift monitor of a promoted pipeline, built from the same lock.

On its own schedule it runs the monitor notebook (``monitor:``) as a run whose only stage is
``monitor``, then ``nbops drift-check``: when the trigger holds, that task succeeds and emits
the drift Asset the training DAG is scheduled on; when it does not, the command exits 99 and
the task is skipped, so no asset event is emitted. While the model has no champion yet the
monitor's own stage command exits 99 too: ``monitor`` and ``drift_trigger`` are skipped and
the DAG run succeeds, with no failure alert (``nbops monitor`` returns 0 then). Like the
training DAG, the lock is read as plain JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import DAG

from nbops.airflow.dag import (
    CLOSE_DOC,
    check_task,
    drift_asset,
    finish,
    load,
    new_dag,
    promoted_line,
    stage_doc,
)
from nbops.airflow.operator import NbopsStageOperator
from nbops.airflow.params import dag_params
from nbops.airflow.pod import MONITOR_RUN_ID, close_arguments, drift_arguments, pod_arguments
from nbops.graph import MONITOR_STAGE
from nbops.status import ExitCode

OUTCOME_DOC = (
    "Succeeds when the monitor notebook ran and the drift check decided (whether or not the trigger held), or "
    "when the monitor was skipped because the model has no champion yet, and fails (upstream_failed) otherwise, "
    "so that the DAG run's state is theirs; `close_run` fails the run only when the record itself cannot be "
    "written."
)

NO_CHAMPION_DOC = (
    f"\n\nSkipped (its stage command exits {int(ExitCode.SKIP)}) while the model has no champion yet: there is "
    "nothing to compare with. `drift_trigger` is skipped with it and the DAG run succeeds."
)


def monitor_dag_id(pipeline: str) -> str:
    """The monitor DAG's id."""
    return f"{pipeline}_monitor"


def monitor_dag_from_lock(path: Path) -> DAG:
    """The monitor DAG of the pipeline frozen in the lock file at ``path``."""
    return load(path, build_monitor_dag)


def build_monitor_dag(lock: dict[str, Any], lock_sha256: str, project_dir: Path) -> DAG:
    """check_conf, the monitor notebook, the drift check (emitting the asset), closing the record."""
    spec = lock["spec"]
    if spec.get("monitor") is None or lock.get("monitor") is None:
        raise ValueError("the pipeline has no monitor (no `monitor:` in the spec); promote it again")
    monitor = spec["monitor"]
    dag = new_dag(
        lock,
        project_dir,
        dag_id=monitor_dag_id(spec["name"]),
        description=f"Drift monitor of {spec['name']}: retrains when {trigger_rule(monitor['trigger'])}.",
        schedule=monitor["schedule"],
        max_active_runs=1,
        tags=["nbops", "monitor", *spec["airflow"]["tags"]],
        doc_md=doc_md(lock, lock_sha256),
        params=dag_params(lock, [MONITOR_STAGE]),
    )
    check = check_task(dag)
    watched = pod_arguments(lock, lock_sha256, MONITOR_STAGE, MONITOR_RUN_ID)
    watch = NbopsStageOperator(dag=dag, doc_md=stage_doc(lock, MONITOR_STAGE) + NO_CHAMPION_DOC, **watched)
    drift = NbopsStageOperator(
        dag=dag, doc_md=drift_doc(lock), outlets=[drift_asset(spec["name"])], **drift_arguments(lock, lock_sha256)
    )
    check >> watch >> drift
    close = NbopsStageOperator(dag=dag, doc_md=CLOSE_DOC, **close_arguments(lock, lock_sha256, monitor=True))
    finish(dag, close, [watch, drift], [watch, drift], OUTCOME_DOC)
    return dag


def trigger_rule(trigger: dict[str, Any]) -> str:
    """The trigger in words, e.g. ``drift_score > 0.2`` (as ``TriggerSpec.describe`` says it)."""
    if trigger.get("above") is not None:
        return f"{trigger['metric']} > {trigger['above']:g}"
    return f"{trigger['metric']} < {trigger['below']:g}"


def drift_doc(lock: dict[str, Any]) -> str:
    """The drift_trigger task's documentation."""
    name = lock["spec"]["name"]
    return (
        f"`nbops drift-check`: reads the monitor attempt's metric and, when "
        f"`{trigger_rule(lock['spec']['monitor']['trigger'])}`, sends the drift alert and succeeds, emitting the "
        f"asset `nbops://{name}/drift` that starts a run of DAG `{name}`. When the trigger does not hold it exits "
        f"{int(ExitCode.SKIP)} and the task is skipped: no asset event, no retraining. It is skipped too when "
        "`monitor` was (the model has no champion yet)."
    )


def doc_md(lock: dict[str, Any], lock_sha256: str) -> str:
    """The monitor DAG's documentation."""
    spec = lock["spec"]
    monitor = spec["monitor"]
    locked = lock["monitor"]
    return "\n".join(
        [
            f"# {monitor_dag_id(spec['name'])}",
            "",
            f"Drift monitor of pipeline `{spec['name']}`: runs notebook `{locked['notebook']}` "
            f"(sha256 `{locked['sha256'][:12]}`) on `{monitor['schedule']}`. When "
            f"`{trigger_rule(monitor['trigger'])}`, `drift_trigger` emits the asset `nbops://{spec['name']}/drift` "
            f"and DAG `{spec['name']}` retrains; otherwise `drift_trigger` is skipped.",
            "",
            promoted_line(lock, lock_sha256),
            "",
            "Each DAG run is recorded in MLflow (experiment "
            f"`{spec['name']}`) as the pipeline run `monitor__<Airflow run id>`, whose only stage is `monitor`. "
            "Parameters appear in the trigger form as `monitor.<name>`, typed by the notebook.",
        ]
    )
