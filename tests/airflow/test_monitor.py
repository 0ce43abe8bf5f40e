"""The ``<name>_monitor`` DAG: its schedule, params and wiring, and the drift task that emits the
asset only when the trigger holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.airflow.conftest import dagbag
from tests.conftest import Project

pytestmark = pytest.mark.integration


def test_the_monitor_dag_runs_the_notebook_then_the_drift_check(loop_manual: Project) -> None:
    dag = dagbag(loop_manual.root / "dags")["loop_monitor"]
    assert dag.timetable.expression == "0 6 * * *"
    assert dag.catchup is False and dag.max_active_runs == 1
    assert {"nbops", "monitor"} <= set(dag.tags)
    assert {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks} == {
        "check_conf": [],
        "monitor": ["check_conf"],
        "drift_trigger": ["monitor"],
        "close_run": ["drift_trigger", "monitor"],
        "stages_succeeded": ["drift_trigger", "monitor"],
    }
    close = dag.get_task("close_run")
    assert close.is_teardown and close.on_failure_fail_dagrun
    assert dag.get_task("stages_succeeded").trigger_rule == "none_failed"  # a quiet day skips drift_trigger
    drift = dag.get_task("drift_trigger")
    assert [a.uri for a in drift.outlets] == ["nbops://loop/drift"]
    assert drift.skip_on_exit_code == [99]
    assert drift.on_finish_action.value == "delete_pod"  # exit 99 is the normal quiet day: no pod left behind
    assert drift.retries == 3
    assert dag.get_task("monitor").retries == 0
    assert "drift_score > 0.5" in dag.description and "drift_score > 0.5" in drift.doc_md
    assert "monitor__<Airflow run id>" in dag.doc_md


def test_monitor_params_are_typed_from_the_monitor_notebook(loop_manual: Project) -> None:
    dag = dagbag(loop_manual.root / "dags")["loop_monitor"]
    params = dag.params
    assert set(params) == {"monitor.drift", "monitor.as_of"}
    assert params.get_param("monitor.drift").schema["type"] == "number"
    assert params.get_param("monitor.drift").schema["section"] == "Stage monitor"
    assert params["monitor.as_of"] == "${run_date}"  # the spec's value, resolved by the stage command
    assert dag.get_task("check_conf").op_kwargs == {"valid": ["monitor.as_of", "monitor.drift"]}


@pytest.mark.unit
def test_exit_codes_and_names_agree_with_the_commands() -> None:
    import nbops.monitor
    import nbops.retrain
    from nbops.airflow.pod import ENV_APPROVER, NOT_TRIGGERED

    assert NOT_TRIGGERED == nbops.monitor.NOT_TRIGGERED
    assert ENV_APPROVER == nbops.retrain.ENV_APPROVER


def test_a_lock_without_a_monitor_builds_no_monitor_dag(loop_manual: Project, tmp_path: Path) -> None:
    from nbops.airflow import monitor_dag_from_lock
    from nbops.airflow.dag import LockFormatError

    lock = json.loads((loop_manual.root / "dags" / "loop.lock.json").read_text())
    lock["spec"]["monitor"] = lock["monitor"] = None
    lock["pipeline_file"] = str(loop_manual.pipeline)
    (tmp_path / "loop.lock.json").write_text(json.dumps(lock))
    with pytest.raises(LockFormatError, match="has no monitor"):
        monitor_dag_from_lock(tmp_path / "loop.lock.json")
