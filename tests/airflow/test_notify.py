"""The DAGs' failure notifier: built from a lock's plain JSON, sending for real to a local JSON hook."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import DAG, BaseNotifier

from nbops.airflow.notify import alerts_of, failure_notifier
from nbops.spec import AlertsSpec
from tests.airflow.conftest import LOGICAL_DATE, SCHEDULED_RUN_ID
from tests.test_alerts import HookServer

pytestmark = pytest.mark.unit

LOG_URL = f"http://airflow:8080/dags/churn/runs/{SCHEDULED_RUN_ID}/tasks/train?try_number=2"


@pytest.fixture
def hook() -> Iterator[HookServer]:
    server = HookServer()
    yield server
    server.close()


def lock(**alerts: Any) -> dict[str, Any]:
    """A lock as the DAG factory reads it: the spec's alerts block dumped as JSON."""
    block = AlertsSpec.model_validate(alerts).model_dump(mode="json") if alerts else None
    return {"lock_version": 1, "spec": {"name": "churn", "alerts": block}}


def failure_context() -> dict[str, Any]:
    """What a DAG's failure callback receives when Airflow knows the task that failed last."""
    dag = DAG(dag_id="churn", schedule=None)
    ti = SimpleNamespace(dag_id="churn", task_id="train", run_id=SCHEDULED_RUN_ID, try_number=2, log_url=LOG_URL)
    dag_run = SimpleNamespace(dag_id="churn", run_id=SCHEDULED_RUN_ID, logical_date=LOGICAL_DATE, conf={})
    return {
        "dag": dag,
        "dag_run": dag_run,
        "ti": ti,
        "task_instance": ti,
        "run_id": SCHEDULED_RUN_ID,
        "logical_date": LOGICAL_DATE,
        "reason": "task_failure",
    }


def test_notifier_sends_the_failed_run(hook: HookServer, capsys: pytest.CaptureFixture[str]) -> None:
    notifier = failure_notifier(lock(urls=[hook.url()]))
    assert isinstance(notifier, BaseNotifier)

    notifier(failure_context())  # as Airflow calls an on_failure_callback

    [payload] = hook.messages()
    assert payload["title"] == "nbops: churn failed (task train)"
    assert payload["type"] == "failure"
    message = payload["message"]
    assert f"DAG run {SCHEDULED_RUN_ID} of DAG churn failed (task_failure)." in message
    assert "Logical date: 2026-11-21T02:00:00+00:00" in message
    assert "Failed task: train" in message
    assert f"Log: {LOG_URL}" in message
    assert "Pipeline: churn" in message
    assert f"Run: {SCHEDULED_RUN_ID}" in message
    assert "nbops: alert 'failure' sent to 1 of 1 URL(s)" in capsys.readouterr().err


def test_a_serialized_dag_in_the_context_does_not_stop_the_alert(hook: HookServer) -> None:
    """``airflow dags test`` runs the callback with a SerializedDAG, which has no template
    environment (apache/airflow#64649): the alert is still sent."""
    notifier = failure_notifier(lock(urls=[hook.url()]))
    assert notifier is not None
    notifier({**failure_context(), "dag": SimpleNamespace(dag_id="churn")})  # no get_template_env
    [payload] = hook.messages()
    assert payload["title"] == "nbops: churn failed (task train)"


def test_minimal_context_and_a_task_exception(hook: HookServer) -> None:
    notifier = failure_notifier(lock(urls=[hook.url()]))
    assert notifier is not None

    notifier.notify({"dag": DAG(dag_id="churn", schedule=None), "run_id": "manual__1", "reason": "timed_out"})
    notifier.notify({"run_id": "manual__2", "exception": ValueError("bad input")})

    first, second = hook.messages()
    assert "DAG run manual__1 of DAG churn failed (timed_out)." in first["message"]
    assert "Failed task" not in first["message"]
    assert "Error: ValueError: bad input" in second["message"]


def test_no_notifier_without_failure_alerts() -> None:
    assert failure_notifier(lock()) is None
    assert failure_notifier({"spec": {"name": "churn"}}) is None
    assert failure_notifier(lock(urls=["json://127.0.0.1:1/hook"], on=["drift", "champion_change"])) is None
    assert alerts_of(lock()) is None
    assert alerts_of(lock(connection="nbops_alerts")) == {
        "urls": [],
        "on": ["failure", "champion_change", "drift"],
        "connection": "nbops_alerts",
    }


def test_connection_urls_also_receive(hook: HookServer, monkeypatch: pytest.MonkeyPatch) -> None:
    config = [
        {"path": f"{hook.url('conn-a')}, {hook.url('conn-b')}", "tag": "alerts"},
        {"path": hook.url("conn-c")},
    ]
    connection = {"conn_type": "apprise", "extra": {"config": json.dumps(config)}}
    monkeypatch.setenv("AIRFLOW_CONN_NBOPS_ALERTS", json.dumps(connection))
    notifier = failure_notifier(lock(urls=[hook.url("spec")], connection="nbops_alerts"))
    assert notifier is not None

    notifier(failure_context())

    assert sorted(path for path, _ in hook.received) == ["/conn-a", "/conn-b", "/conn-c", "/spec"]


def test_connection_alone_dict_config(hook: HookServer, monkeypatch: pytest.MonkeyPatch) -> None:
    connection = {"conn_type": "apprise", "extra": {"config": {"path": hook.url("only")}}}
    monkeypatch.setenv("AIRFLOW_CONN_NBOPS_ONLY", json.dumps(connection))
    notifier = failure_notifier(lock(connection="nbops_only"))
    assert notifier is not None

    notifier(failure_context())

    assert [path for path, _ in hook.received] == ["/only"]


def test_missing_connection_is_reported_and_the_spec_urls_still_receive(
    hook: HookServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NBOPS_NOWHERE", raising=False)
    notifier = failure_notifier(lock(urls=[hook.url()], connection="nbops_nowhere"))
    assert notifier is not None

    notifier(failure_context())

    assert len(hook.received) == 1
    err = capsys.readouterr().err
    assert "cannot read the Apprise URLs of Airflow connection 'nbops_nowhere'" in err
    assert "the alert goes to alerts.urls only" in err


def test_never_raises(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NBOPS_BROKEN", json.dumps({"conn_type": "apprise", "extra": {"config": "[1]"}}))
    broken = failure_notifier({"spec": {"name": "churn", "alerts": {"urls": [], "on": ["failure"]}}})
    dead = failure_notifier(lock(urls=["json://127.0.0.1:1/hook"], connection="nbops_broken"))
    assert broken is not None
    assert dead is not None

    broken(failure_context())
    dead(failure_context())

    err = capsys.readouterr().err
    assert "the failure alert of pipeline 'churn' was not sent (ValidationError" in err
    assert "cannot read the Apprise URLs of Airflow connection 'nbops_broken'" in err
    assert "nbops: alert 'failure' sent to 0 of 1 URL(s)" in err


@pytest.mark.integration
def test_module_imports_neither_the_spec_nor_apprise() -> None:
    code = "import sys, nbops.airflow.notify; print([m for m in ('nbops.spec', 'apprise') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
