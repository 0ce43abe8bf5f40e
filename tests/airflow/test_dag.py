"""The generated DAG as Airflow sees it: it imports cleanly, reads only its lock, and carries
typed Params, docs, schedule and wiring from the spec."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.airflow.conftest import AIRFLOW_HOME
from tests.conftest import ROOT, example_project

pytestmark = pytest.mark.integration


def test_dagbag_of_the_repository_has_no_import_errors() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags["diagnosis"]
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.timetable.expression == "0 2 * * *"
    assert dag.start_date.year == 2026 and dag.start_date.month == 1
    assert "nbops" in dag.tags
    assert {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks} == {
        "check_conf": [],
        "ingest": ["check_conf"],
        "transform": ["ingest"],
        "prepare": ["transform"],
        "train": ["prepare"],
        "optimize": ["prepare", "train"],
        "evaluate": ["optimize", "prepare"],
        "close_run": ["evaluate", "ingest", "optimize", "prepare", "train", "transform"],
        "stages_succeeded": ["evaluate", "ingest", "optimize", "prepare", "train", "transform"],
    }
    close = dag.get_task("close_run")
    assert close.is_teardown and close.on_failure_fail_dagrun and close.trigger_rule == "all_done_setup_success"
    assert "| optimize | `notebooks/optimize.ipynb` |" in dag.doc_md


def test_committed_dag_is_what_promote_writes_today(tmp_path: Path) -> None:
    """A notebook edited without promoting again shows up here as a stale DAG.

    The copy is not a git checkout, so its lock names no commit: that field alone may differ.
    """
    project = example_project(tmp_path)
    shutil.copytree(ROOT / "dags", tmp_path / "dags")
    result = project.nbops("promote", "pipeline.yaml")
    assert result.returncode == 0, result.stderr
    committed, today = (json.loads((d / "dags" / "diagnosis.lock.json").read_text()) for d in (ROOT, tmp_path))
    assert today["git_commit"] == "unknown"
    for lock in (committed, today):
        lock.pop("git_commit"), lock.pop("git_dirty")
    assert committed == today, result.stdout
    assert (ROOT / "dags" / "diagnosis.py").read_bytes() == (tmp_path / "dags" / "diagnosis.py").read_bytes()


def test_params_are_typed_from_the_notebooks() -> None:
    from airflow.dag_processing.dagbag import DagBag

    params = DagBag(str(ROOT / "dags")).dags["diagnosis"].params
    schema = {key: params.get_param(key).schema for key in params}
    assert schema["ingest.batch_size"]["type"] == "integer"
    assert schema["ingest.as_of"]["type"] == "string"
    assert schema["prepare.test_size"]["type"] == "number"
    assert schema["transform.log_features"]["type"] == "array"
    assert schema["ingest.batch_size"]["section"] == "Stage ingest"
    assert schema["ingest.batch_size"]["title"] == "batch_size"
    assert params["ingest.batch_size"] == 3000  # pipeline.yaml overrides the notebook's default
    assert params.get_param("ingest.batch_size").description  # the notebook's trailing comment


def test_wrong_conf_type_is_rejected_by_the_params(tmp_path: Path) -> None:
    import copy

    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    params: ParamsDict = copy.deepcopy(DagBag(str(ROOT / "dags")).dags["diagnosis"].params)
    params["optimize.n_iter"] = 5
    assert params.validate()["optimize.n_iter"] == 5
    with pytest.raises(ParamValidationError, match=r"optimize\.n_iter"):
        params["optimize.n_iter"] = "five"
        params.validate()


AUDIT = r"""
import runpy, sys
# What any DAG file with pod tasks and a cron schedule imports (croniter runs `file` on import).
from airflow.sdk import DAG  # noqa: F401
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator  # noqa: F401
import croniter  # noqa: F401
import nbops.airflow  # noqa: F401
opened = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)):
        opened.append(str(args[0]))
    if event in ("socket.connect", "subprocess.Popen", "os.system"):
        opened.append(f"{event}:{args[:2]}")
sys.addaudithook(hook)
runpy.run_path(sys.argv[1])
print("\n".join(opened))
"""


def test_parsing_the_dag_file_reads_only_the_lock() -> None:
    dag_file = ROOT / "dags" / "diagnosis.py"
    env = {"AIRFLOW_HOME": str(AIRFLOW_HOME), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", AUDIT, str(dag_file)], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    opened = {line for line in result.stdout.splitlines() if line}
    others = {p for p in opened if not p.endswith((".py", ".pyc")) and "site-packages" not in p}
    assert others == {str(ROOT / "dags" / "diagnosis.lock.json")}, opened
    assert not any(":" in p and p.startswith(("socket", "subprocess", "os.system")) for p in opened)


def test_backend_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbops.airflow.settings import SettingError, backend

    monkeypatch.setenv("NBOPS_BACKEND", "LOCAL")
    assert backend() == "local"
    monkeypatch.setenv("NBOPS_BACKEND", "docker")
    with pytest.raises(SettingError, match="NBOPS_BACKEND='docker'"):
        backend()
    monkeypatch.delenv("NBOPS_BACKEND")
    monkeypatch.setenv("AIRFLOW_VAR_NBOPS_BACKEND", "local")  # an Airflow Variable from the environment
    assert backend() == "local"
