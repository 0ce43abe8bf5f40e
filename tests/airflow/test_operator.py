"""The stage operator: exit codes decide skip, retry or fail on both backends, still-running pods
are deleted, and only the command line and environment are templates."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from kubernetes.client import models as k8s

from tests.conftest import Project

pytestmark = pytest.mark.integration


def _operator(project: Project, notebook: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from nbops.airflow.operator import NbopsStageOperator

    project.add_notebook("only", copy=notebook)
    project.write_spec({"name": "ops", "stages": {"only": {"notebook": "nb/only.ipynb"}}})
    monkeypatch.setenv("NBOPS_BACKEND", "local")
    monkeypatch.chdir(project.root)
    return NbopsStageOperator(
        task_id="only",
        cmds=["nbops"],
        arguments=["exec-stage", "--pipeline", str(project.pipeline), "--stage", "only", "--run-id", "r1"],
        env_vars={"MLFLOW_TRACKING_URI": project.tracking_uri},
    )


@pytest.mark.parametrize(
    ("notebook", "retried"),
    [("cell_raises.ipynb", False), ("kernel_dies.ipynb", True), ("sys_exit_zero.ipynb", None)],
)
def test_local_backend_maps_exit_codes_to_retry_or_fail(
    project: Project, monkeypatch: pytest.MonkeyPatch, notebook: str, retried: bool | None
) -> None:
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    operator = _operator(project, notebook, monkeypatch)
    if retried is None:
        operator.execute(context={})
        return
    with pytest.raises(AirflowException) as caught:
        operator.execute(context={})
    assert isinstance(caught.value, AirflowFailException) is not retried
    manifest = json.dumps([str(p) for p in project.attempts("ops", "only")])
    assert "attempt-1" in manifest


def _pod(phase: str, exit_code: int | None) -> k8s.V1Pod:
    state = k8s.V1ContainerState(
        terminated=k8s.V1ContainerStateTerminated(exit_code=exit_code) if exit_code is not None else None
    )
    status = k8s.V1ContainerStatus(
        name="base", state=state, image="nbops-runner:0.1", image_id="", ready=False, restart_count=0
    )
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="p-1"), status=k8s.V1PodStatus(phase=phase, container_statuses=[status])
    )


@pytest.mark.parametrize(
    ("phase", "code", "retried", "deleted"),
    [
        ("Failed", 1, False, False),
        ("Failed", 2, False, False),
        ("Failed", 3, True, False),
        ("Running", None, True, True),
    ],
)
def test_kubernetes_cleanup_maps_exit_codes_and_deletes_running_pods(
    monkeypatch: pytest.MonkeyPatch, phase: str, code: int | None, retried: bool, deleted: bool
) -> None:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from nbops.airflow.operator import NbopsStageOperator

    manager = mock.Mock()
    monkeypatch.setattr(NbopsStageOperator, "pod_manager", manager, raising=False)
    monkeypatch.setattr(KubernetesPodOperator, "cleanup", mock.Mock(side_effect=AirflowException("pod failed")))
    operator = NbopsStageOperator(task_id="t", name="t", namespace="nbops", image="nbops-runner:0.1", cmds=["nbops"])
    remote = _pod(phase, code)
    with pytest.raises(AirflowException) as caught:
        operator.cleanup(remote, remote)
    assert isinstance(caught.value, AirflowFailException) is not retried
    assert manager.delete_pod.called is deleted


def test_only_the_command_and_environment_are_templates(project: Project) -> None:
    from nbops.airflow import dag_from_lock
    from tests.airflow.conftest import render, serialize

    project.add_notebook("a", [("print(1)", [])])
    project.write_spec({"name": "tpl", "image": "reg/{{ 7 * 6 }}:1", "stages": {"a": {"notebook": "nb/a.ipynb"}}})
    assert project.nbops("promote", "pipeline.yaml").returncode == 0
    pod = serialize(render(dag_from_lock(project.root / "dags" / "tpl.lock.json").get_task("a")))
    container = pod["spec"]["containers"][0]
    assert container["image"] == "reg/{{ 7 * 6 }}:1"
    assert container["args"][6] == "scheduled__2026-11-21T02:00:00+00:00"


def test_the_kubernetes_backend_says_how_to_run_here_instead(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset settings, or no cluster at all: the error names NBOPS_BACKEND=local."""
    from airflow.sdk.exceptions import AirflowFailException
    from kubernetes.config.config_exception import ConfigException

    from nbops.airflow.operator import KubernetesPodOperator

    operator = _operator(project, "params.ipynb", monkeypatch)
    monkeypatch.setenv("NBOPS_BACKEND", "kubernetes")
    with pytest.raises(AirflowFailException, match=r"NBOPS_ARTIFACT_ROOT not configured.*set NBOPS_BACKEND=local"):
        operator.execute(context={})
    operator.env_vars = {"MLFLOW_TRACKING_URI": project.tracking_uri, "NBOPS_ARTIFACT_ROOT": "file:///nbops/artifacts"}
    no_cluster = ConfigException("Service host/port is not set.")
    with (
        mock.patch.object(KubernetesPodOperator, "execute", side_effect=no_cluster),
        pytest.raises(
            AirflowFailException, match=r"no Kubernetes cluster configured .*Service host.*NBOPS_BACKEND=local"
        ),
    ):
        operator.execute(context={})


@pytest.mark.parametrize(("skip_on", "outcome"), [(99, "skipped"), (None, "retried")])
def test_local_backend_skips_on_the_skip_exit_code_as_the_pod_operator_does(
    monkeypatch: pytest.MonkeyPatch, skip_on: int | None, outcome: str
) -> None:
    """``nbops drift-check`` exits 99 when the trigger does not hold: the task is skipped, so its
    asset event is not emitted; without skip_on_exit_code, 99 is an unknown exit (retried)."""
    import sys

    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

    from nbops.airflow.operator import NbopsStageOperator

    monkeypatch.setenv("NBOPS_BACKEND", "local")
    operator = NbopsStageOperator(task_id="drift_trigger", cmds=["nbops"], skip_on_exit_code=skip_on)
    monkeypatch.setattr(operator, "command_line", lambda: [sys.executable, "-c", "raise SystemExit(99)"])
    with pytest.raises(AirflowException) as caught:
        operator.execute(context={})
    assert isinstance(caught.value, AirflowSkipException) is (outcome == "skipped")
    assert not isinstance(caught.value, AirflowFailException)


def test_kubernetes_cleanup_keeps_a_skip_a_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk.exceptions import AirflowSkipException

    from nbops.airflow.operator import NbopsStageOperator

    monkeypatch.setattr(NbopsStageOperator, "pod_manager", mock.Mock(), raising=False)
    skip = AirflowSkipException("Pod p-1 returned exit code 99. Skipping.")
    monkeypatch.setattr(KubernetesPodOperator, "cleanup", mock.Mock(side_effect=skip))
    operator = NbopsStageOperator(
        task_id="t", name="t", namespace="nbops", image="nbops-runner:0.1", cmds=["nbops"], skip_on_exit_code=99
    )
    remote = _pod("Failed", 99)
    with pytest.raises(AirflowSkipException):
        operator.cleanup(remote, remote)
