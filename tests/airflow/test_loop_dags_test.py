"""``airflow dags test`` of the retraining loop with the local backend: the training DAG's gate
and approved promotion move the champion; the monitor DAG emits the drift asset only when its
trigger holds, and is skipped (no failure, no alert) before there is a champion; every run's
date is its logical date."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.loop import MODEL, loop_project
from tests.airflow.test_dags_test import airflow
from tests.conftest import Project
from tests.hookserver import HookServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Loop:
    """The promoted loop and the output of each ``airflow dags test`` run, by name."""

    def __init__(self, project: Project, hook: HookServer) -> None:
        self.project = project
        self.hook = hook
        self.runs: dict[str, subprocess.CompletedProcess[str]] = {}
        self.alerts: dict[str, list[dict[str, Any]]] = {}

    def test(self, name: str, dag_id: str, logical_date: str, *args: str) -> None:
        before = len(self.hook.messages())
        self.runs[name] = airflow(self.project, "dags", "test", dag_id, logical_date, *args)
        self.alerts[name] = self.hook.messages()[before:]

    def output(self, name: str) -> str:
        return self.runs[name].stdout + self.runs[name].stderr

    def airflow_run_id(self, name: str, dag_id: str) -> str:
        found = re.search(rf"DagRun Finished: dag_id={dag_id}, .*?run_id=([^,]+),", self.output(name))
        assert found, self.output(name)[-5000:]
        return found.group(1)

    def db(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.project.root / "airflow-home" / "airflow.db") as db:
            return db.execute(query, params).fetchall()

    def states(self, name: str, dag_id: str) -> dict[str, str]:
        rows = self.db(
            "select task_id, state from task_instance where dag_id = ? and run_id = ?",
            dag_id,
            self.airflow_run_id(name, dag_id),
        )
        return dict(rows)

    def mlflow_runs(self, nbops_run_id: str) -> dict[str, Any]:
        """The pipeline run ``nbops_run_id`` and its stage runs: ``{"pipeline": run, stage: run}``."""
        found = {}
        for run in self.project.runs("loop"):
            if run.data.tags.get("nbops.run_id") == nbops_run_id:
                found[run.data.tags.get("nbops.stage") or run.data.tags["nbops.kind"]] = run
        return found


@pytest.fixture(scope="module")
def hook() -> Iterator[HookServer]:
    """Where the DAGs' failure alerts go."""
    server = HookServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory, hook: HookServer) -> Loop:
    """Promoted once, failure alerts on; a monitor run before any champion, a training run (its
    approval given), then a monitor run on a drifting day and one on a quiet day."""
    alerts = {"urls": [hook.url()], "on": ["failure"]}
    project = loop_project(tmp_path_factory.mktemp("loop-dags-test"), alerts=alerts)
    promoted = project.nbops("promote", "pipeline.yaml")
    assert promoted.returncode == 0, promoted.stderr
    migrated = airflow(project, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    loop = Loop(project, hook)
    # A fresh deployment: the monitor DAG, unpaused, runs before the first champion exists; and,
    # to show that `dags test` sends the DAGs' failure alert, a run that fails (a misspelled conf key).
    loop.test("fresh", "loop_monitor", "2026-11-20")
    loop.test("misspelled", "loop_monitor", "2026-11-19", "-c", json.dumps({"monitor.drfit": 0.9}))
    # `dags test` cannot answer a human-in-the-loop task: the approval is marked given.
    loop.test("train", "loop", "2026-11-21", "--mark-success-pattern", "approve_champion")
    loop.test("drift", "loop_monitor", "2026-11-22", "-c", json.dumps({"monitor.drift": 0.9}))
    loop.test("quiet", "loop_monitor", "2026-11-23", "-c", json.dumps({"monitor.drift": 0.1}))
    # The same day again, nothing changed: every stage reuses the first run's attempts.
    loop.test("again", "loop", "2026-11-21T12:00:00+00:00", "--mark-success-pattern", "approve_champion")
    return loop


def test_a_monitor_run_before_any_champion_is_skipped_and_sends_no_alert(loop: Loop) -> None:
    """As ``nbops monitor`` returns 0 then: the monitor's stage command exits 99, the monitor and
    the drift check are skipped, the DAG run succeeds and no failure alert goes out."""
    assert loop.runs["fresh"].returncode == 0, loop.output("fresh")[-5000:]
    output = loop.output("fresh")
    assert re.search(r"DagRun Finished: dag_id=loop_monitor, .* state=success,", output), output[-5000:]
    assert loop.states("fresh", "loop_monitor") == {
        "check_conf": "success",
        "monitor": "skipped",
        "drift_trigger": "skipped",
        "close_run": "success",
        "stages_succeeded": "success",
    }
    assert "has no champion yet" in output
    assert loop.alerts["fresh"] == []
    [failed] = loop.alerts["misspelled"]  # what the fresh run would have sent, had it failed
    assert failed["title"].startswith("nbops: loop_monitor failed") and failed["type"] == "failure"
    fresh = loop.airflow_run_id("fresh", "loop_monitor")
    assert loop.db("select count(*) from asset_event where source_run_id = ?", fresh) == [(0,)]


def test_the_gate_and_the_approved_promotion_make_the_first_champion(loop: Loop) -> None:
    assert loop.runs["train"].returncode == 0, loop.output("train")[-5000:]
    assert loop.states("train", "loop") == {
        "check_conf": "success",
        "prepare": "success",
        "fit": "success",
        "retrain_gate": "success",
        "approve_champion": "success",
        "promote_champion": "success",
        "close_run": "success",
        "stages_succeeded": "success",
    }
    output = loop.output("train")
    assert "gate loop-model: awaiting_approval (first_version)" in output
    assert "gate loop-model: promoted (first_version)" in output
    champion = loop.project.client().get_model_version_by_alias(MODEL, "champion")
    assert str(champion.version) == "1"
    run_id = loop.airflow_run_id("train", "loop")
    record = loop.mlflow_runs(run_id)
    assert record["pipeline"].info.status == "FINISHED"
    assert record["pipeline"].data.tags["nbops.gate.decision"] == "promoted"
    assert champion.tags["nbops.gate.decision"] == "promoted"
    assert champion.tags["nbops.run_id"] == run_id


def test_a_training_run_s_date_is_its_logical_date(loop: Loop) -> None:
    record = loop.mlflow_runs(loop.airflow_run_id("train", "loop"))
    assert record["prepare"].data.params["as_of"] == "2026-11-21"  # spec: as_of: ${run_date}
    assert record["prepare"].data.tags["nbops.run_date"] == "2026-11-21"


def test_a_drifting_day_emits_the_asset_that_schedules_the_training_dag(loop: Loop) -> None:
    assert loop.runs["drift"].returncode == 0, loop.output("drift")[-5000:]
    states = loop.states("drift", "loop_monitor")
    assert states == {
        "check_conf": "success",
        "monitor": "success",
        "drift_trigger": "success",
        "close_run": "success",
        "stages_succeeded": "success",
    }
    events = loop.db(
        "select e.source_dag_id, e.source_task_id, e.source_run_id from asset_event e join asset a on a.id = e.asset_id "
        "where a.uri = 'nbops://loop/drift'"
    )
    assert events == [("loop_monitor", "drift_trigger", loop.airflow_run_id("drift", "loop_monitor"))]
    scheduled = loop.db(
        "select r.dag_id from dag_schedule_asset_reference r join asset a on a.id = r.asset_id "
        "where a.uri = 'nbops://loop/drift'"
    )
    assert scheduled == [("loop",)]


def test_a_monitor_run_is_recorded_and_closed_as_a_run_of_its_own(loop: Loop, tmp_path: Path) -> None:
    airflow_run = loop.airflow_run_id("drift", "loop_monitor")
    record = loop.mlflow_runs(f"monitor__{airflow_run}")
    assert set(record) == {"pipeline", "monitor"}
    parent, monitor = record["pipeline"], record["monitor"]
    assert parent.info.status == "FINISHED" and parent.data.tags["nbops.status"] == "succeeded"
    assert parent.data.tags["airflow.dag_id"] == "loop_monitor"
    assert parent.data.tags["airflow.run_id"] == airflow_run
    assert parent.data.tags["nbops.monitor.holds"] == "true"
    assert parent.data.params == {"monitor.drift": "0.9"}
    assert monitor.data.params["as_of"] == "2026-11-22"  # the monitor run's date
    assert monitor.data.metrics["drift_score"] == 0.9
    index = loop.project.client().download_artifacts(parent.info.run_id, "pipeline/sources.json", str(tmp_path))
    sources = json.loads(Path(index).read_text())
    assert set(sources["notebooks"]) == {"monitor"}


def test_a_quiet_day_skips_the_trigger_and_emits_nothing(loop: Loop) -> None:
    assert loop.runs["quiet"].returncode == 0, loop.output("quiet")[-5000:]
    assert re.search(r"DagRun Finished: dag_id=loop_monitor, .* state=success,", loop.output("quiet"))
    states = loop.states("quiet", "loop_monitor")
    assert states["drift_trigger"] == "skipped"
    assert states["stages_succeeded"] == states["close_run"] == states["monitor"] == "success"
    assert loop.db("select count(*) from asset_event") == [(1,)]  # the drifting day's only
    record = loop.mlflow_runs(f"monitor__{loop.airflow_run_id('quiet', 'loop_monitor')}")
    assert record["pipeline"].data.tags["nbops.monitor.holds"] == "false"
    assert record["pipeline"].data.tags["nbops.status"] == "succeeded"


def test_an_unchanged_training_run_reuses_every_stage_without_a_stage_command(loop: Loop) -> None:
    assert loop.runs["again"].returncode == 0, loop.output("again")[-5000:]
    output = loop.output("again")
    assert output.count("no pod started, no notebook ran") == 2
    states = loop.states("again", "loop")
    assert (states["prepare"], states["fit"], states["stages_succeeded"]) == ("success", "success", "success")
    # Nothing new to judge: the gate says so and, with manual approval, no one is asked.
    assert "gate loop-model: kept (reused)" in output
    assert states["retrain_gate"] == states["approve_champion"] == states["promote_champion"] == "skipped"
    first = loop.mlflow_runs(loop.airflow_run_id("train", "loop"))
    record = loop.mlflow_runs(loop.airflow_run_id("again", "loop"))
    for stage in ("prepare", "fit"):
        cached = record[stage]
        assert cached.data.tags["nbops.status"] == "cached"
        assert cached.data.tags["nbops.reused_mlflow_run"] == first[stage].info.run_id
    assert record["pipeline"].data.tags["nbops.status"] == "succeeded"
    assert str(loop.project.client().get_model_version_by_alias(MODEL, "champion").version) == "1"
