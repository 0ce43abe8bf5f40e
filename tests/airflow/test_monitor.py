"""The ``<name>_monitor`` DAG: its schedule, params and wiring, the drift task that emits the
asset only when the trigger holds, and the monitor that is skipped while there is no champion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from kubernetes.client import models as k8s

from tests.airflow.conftest import dagbag, render
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
    assert dag.get_task("monitor").skip_on_exit_code == [99]  # no champion yet: nothing to monitor
    assert "no champion yet" in dag.get_task("monitor").doc_md
    assert drift.trigger_rule == "all_success"  # so a skipped monitor skips the drift check too
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
    import nbops.airflow.pod
    import nbops.context
    import nbops.monitor
    import nbops.retrain
    from nbops.status import ExitCode

    # The code the DAGs skip on is the one `nbops drift-check` and `nbops gate` exit with: one name.
    assert ExitCode.SKIP == 99 and not hasattr(nbops.monitor, "NOT_TRIGGERED")
    assert not hasattr(nbops.airflow.pod, "NOT_TRIGGERED")
    # One definition of the approver's variable, read by `nbops approve` and set by the DAG.
    assert nbops.airflow.pod.ENV_APPROVER is nbops.context.ENV_APPROVER is nbops.retrain.ENV_APPROVER


def test_a_lock_without_a_monitor_builds_no_monitor_dag(loop_manual: Project, tmp_path: Path) -> None:
    from nbops.airflow import monitor_dag_from_lock
    from nbops.airflow.dag import LockFormatError

    lock = json.loads((loop_manual.root / "dags" / "loop.lock.json").read_text())
    lock["spec"]["monitor"] = lock["monitor"] = None
    lock["pipeline_file"] = str(loop_manual.pipeline)
    (tmp_path / "loop.lock.json").write_text(json.dumps(lock))
    with pytest.raises(LockFormatError, match="has no monitor"):
        monitor_dag_from_lock(tmp_path / "loop.lock.json")


def _finished(pod: Any, exit_code: int) -> k8s.V1Pod:
    """``pod`` as the API server reports it once its stage command exited ``exit_code``."""
    terminated = k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(exit_code=exit_code))
    status = k8s.V1ContainerStatus(
        name="base", state=terminated, image="nbops-runner:0.1", image_id="", ready=False, restart_count=0
    )
    return k8s.V1Pod(
        metadata=pod.metadata, spec=pod.spec, status=k8s.V1PodStatus(phase="Failed", container_statuses=[status])
    )


@pytest.mark.parametrize(("code", "outcome"), [(99, "skipped"), (2, "failed"), (1, "failed")])
def test_a_monitor_pod_without_a_champion_is_skipped_not_failed(
    loop_manual: Project, monkeypatch: pytest.MonkeyPatch, code: int, outcome: str
) -> None:
    """A fresh deployment: the monitor's stage command exits 99 (no champion to compare with yet).
    The pod built for the run (dry run) ends as a skip, not a failure, so the DAG run succeeds and
    its failure alert (the DAG's on_failure_callback) is not sent; any other exit still fails."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from nbops.airflow.operator import NbopsStageOperator

    dag = dagbag(loop_manual.root / "dags")["loop_monitor"]
    task = dag.get_task("monitor")
    pod = render(task)
    sha = pod.metadata.annotations["nbops.io/lock-sha256"]
    assert pod.spec.containers[0].args[:5] == ["exec-stage", "--promoted", sha, "--stage", "monitor"]
    remote = _finished(pod, code)
    manager = mock.Mock()
    manager.read_pod.return_value = remote
    monkeypatch.setattr(NbopsStageOperator, "pod_manager", manager, raising=False)
    monkeypatch.setattr(NbopsStageOperator, "client", mock.Mock(), raising=False)
    expected = AirflowSkipException if outcome == "skipped" else AirflowFailException
    with pytest.raises(expected):
        task.cleanup(pod, remote)
    assert not task.on_failure_callback  # the failure alert is the DAG run's, sent only when the run fails
    assert dag.get_task("stages_succeeded").trigger_rule == "none_failed"
