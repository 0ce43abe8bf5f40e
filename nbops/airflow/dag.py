"""Build the Airflow DAG of a promoted pipeline from its lock (and from nothing else).

The lock was validated when it was written; here it is read as plain JSON so that parsing
a DAG file costs little more than the operators it creates (see benchmarks/dag_parse.py).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from nbops.airflow import conf
from nbops.airflow.operator import NbopsStageOperator
from nbops.airflow.params import dag_params, stage_defaults, type_label
from nbops.airflow.pod import close_arguments, pod_arguments
from nbops.airflow.settings import settings_macro
from nbops.graph import OUTCOME_TASK, topological_order

# Fixed so that the DAG's identity never depends on when it was parsed; catchup is off.
START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
LOCK_VERSION = 1


CLOSE_DOC = (
    "Closes the pipeline run's MLflow record once every stage is done, whatever happened: archives the spec, "
    "the lock and the notebooks' index, records this DAG run (dag id, run id, logical date, conf) and ends the "
    "run FINISHED, FAILED or KILLED as its stages did. It never changes the DAG run's state unless the record "
    "itself cannot be written."
)


OUTCOME_DOC = (
    "Succeeds when every stage succeeded and fails (upstream_failed) otherwise, so that the DAG run's state is "
    "the stages' own; `close_run` fails the run only when the record itself cannot be written."
)


class LockFormatError(ValueError):
    """The lock beside a DAG file is not one this nbops wrote."""


def dag_from_lock(path: Path) -> DAG:
    """The DAG of the pipeline frozen in the lock file at ``path``."""
    raw = path.read_bytes()
    try:
        lock = json.loads(raw)
        if lock.get("lock_version") != LOCK_VERSION:
            raise LockFormatError(f"lock_version {lock.get('lock_version')!r}, expected {LOCK_VERSION}")
        return build_dag(lock, hashlib.sha256(raw).hexdigest(), (path.parent / lock["pipeline_file"]).parent)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LockFormatError(
            f"{path}: not a lock this nbops can build a DAG from ({type(exc).__name__}: {exc}). "
            "Run `nbops promote` again with the nbops version installed in Airflow."
        ) from exc


def build_dag(lock: dict[str, Any], lock_sha256: str, project_dir: Path) -> DAG:
    """One task per stage, wired by ``needs``, after the conf check and before closing the record."""
    spec = lock["spec"]
    dag = DAG(
        dag_id=spec["name"],
        description=spec["description"] or None,
        schedule=spec["schedule"],
        start_date=START_DATE,
        catchup=False,
        max_active_runs=spec["airflow"]["max_active_runs"],
        tags=["nbops", *spec["airflow"]["tags"]],
        doc_md=doc_md(lock, lock_sha256),
        params=dag_params(lock),
        user_defined_macros={"nbops_setting": settings_macro(project_dir, spec["kubernetes"]["artifacts_claim"])},
    )
    check = PythonOperator(
        task_id=conf.TASK_ID,
        dag=dag,
        doc_md=conf.DOC,
        python_callable=conf.check_conf,
        op_kwargs={"valid": sorted(dag.params)},
        retries=0,
    )
    tasks: dict[str, NbopsStageOperator] = {}
    for name in stage_order(lock):
        task = NbopsStageOperator(dag=dag, doc_md=stage_doc(lock, name), **pod_arguments(lock, lock_sha256, name))
        for upstream in lock["stages"][name]["settings"]["needs"]:
            tasks[upstream] >> task
        if not lock["stages"][name]["settings"]["needs"]:
            check >> task
        tasks[name] = task
    # The record is closed whatever happened upstream. A teardown that can fail the run is the
    # only leaf Airflow would look at, so `stages_succeeded`, a leaf of its own that succeeds
    # only when every stage did, carries the stages' outcome into the DAG run's state.
    close = NbopsStageOperator(dag=dag, doc_md=CLOSE_DOC, **close_arguments(lock, lock_sha256))
    list(tasks.values()) >> close
    close.as_teardown(on_failure_fail_dagrun=True)
    list(tasks.values()) >> EmptyOperator(task_id=OUTCOME_TASK, dag=dag, doc_md=OUTCOME_DOC)
    return dag


def stage_order(lock: dict[str, Any]) -> list[str]:
    """Stages upstream first."""
    return topological_order({name: s["settings"]["needs"] for name, s in lock["stages"].items()})


def doc_md(lock: dict[str, Any], lock_sha256: str) -> str:
    """The DAG's documentation: what was promoted, and a table of its stages."""
    spec = lock["spec"]
    lines = [
        f"# {spec['name']}",
        "",
        spec["description"],
        "",
        f"Promoted by nbops {lock['nbops_version']} from `{lock['pipeline_file']}` "
        f"(spec sha256 `{lock['spec_sha256'][:12]}`, lock sha256 `{lock_sha256[:12]}`). "
        "Do not edit the DAG file: change the pipeline and run `nbops promote` again.",
        "",
        "| stage | notebook | sha256 | needs | image | cpu / memory / gpu | retries | timeout (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in stage_order(lock):
        locked = lock["stages"][name]
        stage = locked["settings"]
        res = stage["resources"]
        lines.append(
            f"| {name} | `{locked['notebook']}` | `{locked['sha256'][:12]}` | {', '.join(stage['needs']) or '-'} | "
            f"`{stage['image']}` | {res.get('cpu') or '-'} / {res.get('memory') or '-'} / {res.get('gpu') or 0} | "
            f"{stage['retries']} | {stage['timeout']} |"
        )
    lines += ["", "Parameters appear in the trigger form as `<stage>.<name>`, typed by each notebook."]
    return "\n".join(lines)


def stage_doc(lock: dict[str, Any], stage: str) -> str:
    """A task's documentation: its notebook and parameters."""
    locked = lock["stages"][stage]
    defaults = stage_defaults(lock, stage)
    rows = [
        f"| `{p['name']}` | {type_label(p)} | `{defaults[p['name']]!r}` | {p.get('help', '')} |"
        for p in locked["parameters"]
    ]
    table = ["| parameter | type | default | help |", "|---|---|---|---|", *rows] if rows else ["No parameters."]
    return "\n".join([f"Notebook `{locked['notebook']}` (sha256 `{locked['sha256']}`).", "", *table])
