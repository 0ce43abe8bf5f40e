"""Airflow test set-up: a private AIRFLOW_HOME, chosen before anything imports Airflow."""

from __future__ import annotations

import copy
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="nbops-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.pop("NBOPS_BACKEND", None)

SCHEDULED_RUN_ID = "scheduled__2026-11-21T02:00:00+00:00"
LOGICAL_DATE = datetime(2026, 11, 21, 2, tzinfo=UTC)


def airflow_env(dags: Path, **extra: str) -> dict[str, str]:
    """Environment of an ``airflow`` subprocess over ``dags``, isolated from the developer's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_", "AIRFLOW"))}
    env.update(
        {
            "AIRFLOW_HOME": str(dags.parent / "airflow-home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            **extra,
        }
    )
    return env


def render(
    task: Any,
    conf: dict[str, Any] | None = None,
    run_id: str = SCHEDULED_RUN_ID,
    try_number: int = 1,
    xcom: dict[str, Any] | None = None,
    run_type: str = "scheduled",
    map_index: int = -1,
) -> Any:
    """Render a task's templates as a worker would for a DAG run, then build its pod (dry run).

    ``xcom``: the results of upstream tasks by task id, as ``ti.xcom_pull(task_ids=...)`` returns them;
    ``run_type``: what started the DAG run (``asset_triggered``: the drift asset); ``map_index``: the
    task instance of a mapped task (an unmapped one, :meth:`MappedOperator.unmap`).
    """
    dag = task.dag
    merged = copy.deepcopy(dag.params)
    for key, value in (conf or {}).items():
        merged[key] = value
    params = merged.validate()
    ti = SimpleNamespace(
        dag_id=dag.dag_id,
        task_id=task.task_id,
        run_id=run_id,
        try_number=try_number,
        map_index=map_index,
        xcom_pull=lambda task_ids=None, **_: (xcom or {}).get(task_ids),
    )
    context = {
        "dag": dag,
        "task": task,
        "ti": ti,
        "task_instance": ti,
        "run_id": run_id,
        "params": params,
        "dag_run": SimpleNamespace(
            run_id=run_id,
            conf=conf or {},
            dag_id=dag.dag_id,
            logical_date=LOGICAL_DATE,
            run_after=LOGICAL_DATE,
            run_type=run_type,
        ),
        "ds": "2026-11-21",
        "ts": "2026-11-21T02:00:00+00:00",
    }
    task.render_template_fields(context, jinja_env=dag.get_template_env())
    return task.build_pod_request_obj(context, dry_run=True)


def serialize(pod: Any) -> dict[str, Any]:
    """A V1Pod as the API server receives it (camelCase, no nulls)."""
    from kubernetes.client import ApiClient

    data: dict[str, Any] = ApiClient().sanitize_for_serialization(pod)
    return data


def _promoted(root: Path, **options: Any) -> Any:
    from tests.airflow.loop import loop_project

    project = loop_project(root, **options)
    result = project.nbops("promote", "pipeline.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    return project


@pytest.fixture(scope="session")
def loop_manual(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The loop pipeline promoted: a daily schedule, a manual approval, a stage after the gate's."""
    return _promoted(tmp_path_factory.mktemp("loop-manual"), report=True)


@pytest.fixture(scope="session")
def loop_auto(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The loop pipeline promoted with an automatic gate and no schedule of its own."""
    return _promoted(tmp_path_factory.mktemp("loop-auto"), name="auto", approval="auto", schedule=None)


def dagbag(dags: Path) -> dict[str, Any]:
    """The DAGs Airflow finds in ``dags``, by id; no file may fail to import."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(dags))
    assert bag.import_errors == {}
    return dict(bag.dags)


def lock_sha256(project: Any, name: str) -> str:
    import hashlib

    return hashlib.sha256((project.root / "dags" / f"{name}.lock.json").read_bytes()).hexdigest()
