"""``airflow dags test`` runs the promoted example for real with the local backend and leaves
the same MLflow record as ``nbops run``; conf overrides are honoured, wrong types refused."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.conftest import airflow_env
from tests.conftest import Project, example_project

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STAGES = ["ingest", "transform", "prepare", "train", "optimize", "evaluate"]
SMOKE_CONF = {"ingest.batch_size": 400, "optimize.n_iter": 2, "optimize.cv_folds": 2}
SMOKE_P = [arg for key, value in SMOKE_CONF.items() for arg in ("-p", f"{key}={value}")]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def airflow(project: Project, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AIRFLOW, *args],
        cwd=project.root,
        env=airflow_env(project.root / "dags", NBOPS_BACKEND="local"),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, subprocess.CompletedProcess[str]]:
    """The example promoted, run once by ``airflow dags test`` and once by ``nbops run``."""
    root = tmp_path_factory.mktemp("airflow-example")
    project = example_project(root)
    promoted = project.nbops("promote", "pipeline.yaml")
    assert promoted.returncode == 0, promoted.stderr
    migrated = airflow(project, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    tested = airflow(project, "dags", "test", "diagnosis", "-c", json.dumps(SMOKE_CONF))
    # --force: both backends execute every notebook (the local run could reuse the DAG run's attempts).
    local = project.nbops("run", "pipeline.yaml", *SMOKE_P, "--force", timeout=600)
    assert local.returncode == 0, local.stdout + local.stderr
    return project, tested


def by_trigger(project: Project) -> dict[str, tuple[Any, dict[str, Any]]]:
    """trigger -> (parent run, {stage: stage run})."""
    runs = project.runs("diagnosis")
    out = {}
    for parent in (r for r in runs if r.data.tags.get("nbops.kind") == "pipeline"):
        children = {
            r.data.tags["nbops.stage"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
        }
        out[parent.data.tags["nbops.trigger"]] = (parent, children)
    return out


def test_dags_test_runs_the_example_end_to_end(runs: tuple[Project, subprocess.CompletedProcess[str]]) -> None:
    project, tested = runs
    assert tested.returncode == 0, tested.stdout[-5000:] + tested.stderr[-5000:]
    assert re.search(r"DagRun Finished: dag_id=diagnosis, .* state=success,", tested.stdout + tested.stderr)
    run_dirs = list((project.root / ".nbops" / "artifacts" / "runs" / "diagnosis").glob("manual__*"))
    assert len(run_dirs) == 1 and ":" not in run_dirs[0].name and "+" not in run_dirs[0].name
    for stage in STAGES:
        assert (run_dirs[0] / stage / "attempt-1" / "manifest.json").exists(), stage


def test_the_dag_run_closes_its_pipeline_record(runs: tuple[Project, subprocess.CompletedProcess[str]]) -> None:
    project, tested = runs
    assert tested.returncode == 0
    parent, stages = by_trigger(project)["airflow"]
    assert parent.info.status == "FINISHED" and parent.info.end_time
    assert parent.data.tags["nbops.status"] == "succeeded"
    assert parent.data.tags["airflow.logical_date"].startswith("20")
    assert json.loads(parent.data.tags["airflow.conf"]) == SMOKE_CONF
    assert parent.data.params == {k: json.dumps(v) for k, v in SMOKE_CONF.items()}
    assert parent.data.tags["nbops.git_commit"]  # the lock's: 'unknown' in this copy outside git
    artifacts = {a.path for a in project.client().list_artifacts(parent.info.run_id, "pipeline")}
    assert artifacts == {"pipeline/pipeline.yaml", "pipeline/diagnosis.lock.json", "pipeline/sources.json"}
    assert "close_run" not in stages  # a task, not a stage: it leaves no stage record


def test_the_model_of_a_dag_run_is_audited_back_to_the_lock(
    runs: tuple[Project, subprocess.CompletedProcess[str]],
) -> None:
    project, tested = runs
    assert tested.returncode == 0
    versions = project.client().search_model_versions("name = 'diagnosis-classifier'")
    (mine,) = [v for v in versions if v.tags.get("nbops.run_id", "").startswith("manual__")]
    lock_sha = hashlib.sha256((project.root / "dags" / "diagnosis.lock.json").read_bytes()).hexdigest()
    assert mine.tags["nbops.lock_sha256"] == lock_sha
    audit = project.nbops("audit", f"diagnosis-classifier/{mine.version}", "--json")
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr
    document = json.loads(audit.stdout)
    assert document["pipeline_run"]["airflow"]["dag_id"] == "diagnosis"
    assert any(c["subject"] == "lock copy" and c["ok"] for c in document["checks"]), document["checks"]


def test_same_mlflow_record_as_nbops_run(runs: tuple[Project, subprocess.CompletedProcess[str]]) -> None:
    project, tested = runs
    assert tested.returncode == 0
    record = by_trigger(project)
    assert set(record) == {"airflow", "nbops run"}
    (af_parent, af), (nb_parent, nb) = record["airflow"], record["nbops run"]
    assert af_parent.data.tags["airflow.dag_id"] == "diagnosis"
    assert af_parent.data.tags["airflow.run_id"].startswith("manual__")
    assert af_parent.data.tags["airflow.try_number"] == "1"
    assert af_parent.data.tags["nbops.lock_sha256"]
    assert "airflow.dag_id" not in nb_parent.data.tags and "nbops.lock_sha256" not in nb_parent.data.tags
    assert nb_parent.info.status == af_parent.info.status == "FINISHED"
    assert sorted(af) == sorted(nb) == sorted(STAGES)
    client = project.client()
    for stage in STAGES:
        a, n = af[stage], nb[stage]
        assert a.info.status == n.info.status == "FINISHED", stage
        assert a.data.params == n.data.params, stage
        assert set(a.data.metrics) == set(n.data.metrics), stage
        assert a.data.tags["nbops.notebook.sha256"] == n.data.tags["nbops.notebook.sha256"], stage
        assert a.data.tags["nbops.notebook.path"] == n.data.tags["nbops.notebook.path"], stage
        plain = {k for k in n.data.tags if not k.startswith("mlflow.")}
        assert plain <= set(a.data.tags), stage
        assert {"airflow.dag_id", "airflow.run_id", "airflow.try_number"} <= set(a.data.tags)
        assert {x.path for x in client.list_artifacts(a.info.run_id)} == {
            x.path for x in client.list_artifacts(n.info.run_id)
        }, stage


def test_conf_overrides_a_parameter(runs: tuple[Project, subprocess.CompletedProcess[str]]) -> None:
    project, _ = runs
    _, af = by_trigger(project)["airflow"]
    assert af["ingest"].data.params["batch_size"] == "400"  # the spec says 3000; conf wins
    assert af["optimize"].data.params["n_iter"] == "2"


def test_conf_of_the_wrong_type_is_rejected_before_any_stage(
    runs: tuple[Project, subprocess.CompletedProcess[str]],
) -> None:
    project, _ = runs
    before = sorted((project.root / ".nbops" / "artifacts" / "runs" / "diagnosis").iterdir())
    result = airflow(project, "dags", "test", "diagnosis", "-c", json.dumps({"ingest.batch_size": "many"}))
    assert result.returncode != 0
    assert "Invalid input for param ingest.batch_size" in result.stdout + result.stderr
    assert sorted((project.root / ".nbops" / "artifacts" / "runs" / "diagnosis").iterdir()) == before
    assert len(by_trigger(project)) == 2


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, subprocess.CompletedProcess[str]]:
    """A two-stage pipeline whose second stage raises, promoted and run by ``airflow dags test``."""
    project = Project(tmp_path_factory.mktemp("airflow-failing"))
    first = project.add_notebook("first", [("n: int = 1", ["parameters"]), ("print(n)", [])])
    second = project.add_notebook("second", [("raise ValueError('no good')", [])])
    project.write_spec(
        {"name": "fails", "stages": {"first": {"notebook": first}, "second": {"notebook": second, "needs": ["first"]}}}
    )
    assert project.nbops("promote", "pipeline.yaml").returncode == 0
    assert airflow(project, "db", "migrate").returncode == 0
    return project, airflow(project, "dags", "test", "fails", "-c", json.dumps({"first.n": 5}))


def test_a_failing_stage_fails_the_dag_run_and_closes_the_record_failed(
    failing: tuple[Project, subprocess.CompletedProcess[str]],
) -> None:
    project, tested = failing
    output = tested.stdout + tested.stderr
    assert re.search(r"DagRun Finished: dag_id=fails, .* state=failed,", output), output[-5000:]
    runs = project.runs("fails")
    (parent,) = [r for r in runs if r.data.tags.get("nbops.kind") == "pipeline"]
    stages = {r.data.tags["nbops.stage"]: r for r in runs if r.data.tags.get("nbops.kind") == "stage"}
    assert stages["first"].info.status == "FINISHED" and stages["second"].info.status == "FAILED"
    assert parent.info.status == "FAILED" and parent.info.end_time
    assert parent.data.tags["nbops.status"] == "failed"
    assert parent.data.tags["airflow.dag_id"] == "fails"
    assert parent.data.params == {"first.n": "5"}
    assert "RUNNING" not in {r.info.status for r in runs}


def test_a_misspelled_conf_key_fails_the_dag_run_before_any_stage(
    failing: tuple[Project, subprocess.CompletedProcess[str]],
) -> None:
    """``airflow dags test fails -c '{"frist.n": 5}'``: Airflow lets the key through, the DAG's
    first task refuses it, naming the key and the nearest parameter; no stage runs."""
    project, _ = failing
    attempts = sorted((project.root / ".nbops" / "artifacts" / "runs" / "fails").rglob("attempt-*"))
    result = airflow(project, "dags", "test", "fails", "-c", json.dumps({"frist.n": 5}))
    output = result.stdout + result.stderr
    assert re.search(r"DagRun Finished: dag_id=fails, .* state=failed,", output), output[-5000:]
    assert "conf key 'frist.n' names no stage parameter; did you mean 'first.n'?" in output
    assert sorted((project.root / ".nbops" / "artifacts" / "runs" / "fails").rglob("attempt-*")) == attempts
