"""Build the Airflow DAG of a promoted pipeline from its lock (and from nothing else)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG

from nbops.airflow.operator import NbopsStageOperator
from nbops.airflow.params import dag_params
from nbops.airflow.pod import pod_arguments
from nbops.airflow.settings import settings_macro
from nbops.graph import topological_order
from nbops.lock import Lock, parse_lock

# Fixed so that the DAG's identity never depends on when it was parsed; catchup is off.
START_DATE = datetime(2026, 1, 1, tzinfo=UTC)


def dag_from_lock(path: Path) -> DAG:
    """The DAG of the pipeline frozen in the lock file at ``path``.

    Reads the lock once; every task's pod and command are derived from it.
    """
    raw = path.read_bytes()
    lock = parse_lock(raw, path)
    return build_dag(lock, hashlib.sha256(raw).hexdigest(), project_dir=(path.parent / lock.pipeline_file).parent)


def build_dag(lock: Lock, lock_sha256: str, project_dir: Path) -> DAG:
    """One task per stage, wired by ``needs``."""
    spec = lock.spec
    dag = DAG(
        dag_id=spec.name,
        description=spec.description or None,
        schedule=spec.schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=spec.airflow.max_active_runs,
        tags=["nbops", *spec.airflow.tags],
        doc_md=doc_md(lock, lock_sha256),
        params=dag_params(lock),
        user_defined_macros={"nbops_setting": settings_macro(project_dir, spec.kubernetes.artifacts_claim)},
        default_args={"owner": "nbops"},
    )
    graph = {name: stage.needs for name, stage in spec.stages.items()}
    tasks: dict[str, NbopsStageOperator] = {}
    for name in topological_order(graph):
        task = NbopsStageOperator(dag=dag, doc_md=stage_doc(lock, name), **pod_arguments(lock, lock_sha256, name))
        for upstream in graph[name]:
            tasks[upstream] >> task
        tasks[name] = task
    return dag


def doc_md(lock: Lock, lock_sha256: str) -> str:
    """The DAG's documentation: what was promoted, and a table of its stages."""
    spec = lock.spec
    lines = [
        f"# {spec.name}",
        "",
        spec.description,
        "",
        f"Promoted by nbops {lock.nbops_version} from `{lock.pipeline_file}` "
        f"(spec sha256 `{lock.spec_sha256[:12]}`, lock sha256 `{lock_sha256[:12]}`). "
        "Do not edit the DAG file: change the pipeline and run `nbops promote` again.",
        "",
        "| stage | notebook | sha256 | needs | image | cpu / memory / gpu | retries | timeout (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, locked in lock.stages.items():
        stage = lock.resolved(name)
        res = stage.resources
        lines.append(
            f"| {name} | `{locked.notebook}` | `{locked.sha256[:12]}` | {', '.join(stage.needs) or '-'} | "
            f"`{stage.image}` | {res.cpu or '-'} / {res.memory or '-'} / {res.gpu or 0} | {stage.retries} | "
            f"{stage.timeout} |"
        )
    lines += ["", "Parameters appear in the trigger form as `<stage>.<name>`, typed by each notebook."]
    return "\n".join(lines)


def stage_doc(lock: Lock, stage: str) -> str:
    """A task's documentation: its notebook and parameters."""
    locked = lock.stages[stage]
    overrides: dict[str, Any] = lock.spec.stages[stage].parameters
    rows = [
        f"| `{p.name}` | {p.type_label} | `{overrides.get(p.name, p.default)!r}` | {p.help} |"
        for p in locked.parameters
    ]
    table = ["| parameter | type | default | help |", "|---|---|---|---|", *rows] if rows else ["No parameters."]
    return "\n".join([f"Notebook `{locked.notebook}` (sha256 `{locked.sha256}`).", "", *table])
