"""The stage operator: exit codes decide skip, retry or fail on both backends, still-running pods
are deleted, the image a pod ran is logged and pushed to XCom, only the command line and
environment are templates, and a run the drift asset started forces its stages."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
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


DIGEST = "registry.example.com/nbops-runner@sha256:" + "ab" * 32
SIDECAR_DIGEST = "registry.example.com/istio-proxy@sha256:" + "cd" * 32


def _pod(phase: str, exit_code: int | None, image_id: str = "") -> k8s.V1Pod:
    """A pod as the API server returns it once the kubelet reported its container ("base", the
    operator's), with a sidecar whose image must not be mistaken for the stage's."""
    state = k8s.V1ContainerState(
        terminated=k8s.V1ContainerStateTerminated(exit_code=exit_code) if exit_code is not None else None
    )
    status = k8s.V1ContainerStatus(
        name="base", state=state, image="nbops-runner:0.1", image_id=image_id, ready=False, restart_count=0
    )
    sidecar = k8s.V1ContainerStatus(
        name="istio-proxy", image="istio-proxy:1", image_id=SIDECAR_DIGEST, ready=True, restart_count=0
    )
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="p-1"),
        status=k8s.V1PodStatus(phase=phase, container_statuses=[sidecar, status]),
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


@pytest.mark.parametrize(("skip_on", "outcome"), [(99, "skipped"), (None, "failed")])
def test_local_backend_skips_on_the_skip_exit_code_as_the_pod_operator_does(
    monkeypatch: pytest.MonkeyPatch, skip_on: int | None, outcome: str
) -> None:
    """``nbops drift-check`` exits 99 when the trigger does not hold: the task is skipped, so its
    asset event is not emitted. A task that does not skip on it fails, not retried: 99 is
    ``ExitCode.SKIP``, not an infrastructure failure (the pod operator's cleanup says the same)."""
    import sys

    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

    from nbops.airflow.operator import NbopsStageOperator

    monkeypatch.setenv("NBOPS_BACKEND", "local")
    operator = NbopsStageOperator(task_id="drift_trigger", cmds=["nbops"], skip_on_exit_code=skip_on)
    monkeypatch.setattr(operator, "command_line", lambda: [sys.executable, "-c", "raise SystemExit(99)"])
    with pytest.raises(AirflowException) as caught:
        operator.execute(context={})
    assert isinstance(caught.value, AirflowSkipException) is (outcome == "skipped")
    assert isinstance(caught.value, AirflowFailException) is (outcome == "failed")


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


@pytest.mark.parametrize(("code", "outcome"), [(99, "skipped"), (2, "failed")])
def test_the_local_monitor_stage_without_a_champion_is_skipped(
    loop_manual: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, code: int, outcome: str
) -> None:
    """The monitor DAG's stage task on the local backend: its stage command exits 99 while the model
    has no champion, and the task is skipped as the pod operator skips it; other exits still fail."""
    import sys

    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from tests.airflow.conftest import dagbag, render

    monkeypatch.setenv("NBOPS_BACKEND", "local")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("NBOPS_ARTIFACT_ROOT", str(tmp_path / "no-store-here"))  # nothing to reuse from
    task = dagbag(loop_manual.root / "dags")["loop_monitor"].get_task("monitor")
    render(task)
    ran: list[list[str]] = []

    def exits(self: Any) -> list[str]:
        ran.append(list(self.arguments))
        return [sys.executable, "-c", f"raise SystemExit({code})"]

    monkeypatch.setattr(type(task), "command_line", exits)
    expected = AirflowSkipException if outcome == "skipped" else AirflowFailException
    with pytest.raises(expected):
        task.execute(context={})
    assert ran and ran[0][:1] == ["exec-stage"] and "--stage" in ran[0]


def _dag_run_context(run_type: str) -> dict[str, Any]:
    run = SimpleNamespace(run_id="r1", run_type=run_type, conf={}, logical_date=None, run_after=None)
    return {"dag_run": run, "run_id": "r1", "params": {}}


@pytest.mark.parametrize("run_type", ["asset_triggered", "scheduled", "manual"])
def test_an_asset_triggered_run_forces_the_stage_and_skips_the_worker_s_reuse_check(
    project: Project, monkeypatch: pytest.MonkeyPatch, run_type: str
) -> None:
    """A DAG run the drift asset started runs every notebook again: the rendered command line gets
    --force (so the stage command reuses nothing) and the worker does not look for an attempt to
    reuse. Any other run looks, and the unchanged stage is reused."""
    import nbops.stage.command
    from nbops.stage.result import StageRequest

    _operator(project, "params.ipynb", monkeypatch).execute(context={})  # attempt 1 runs the notebook
    probed: list[StageRequest] = []
    monkeypatch.setattr(nbops.stage.command, "probe_reuse", lambda request, *_: probed.append(request))
    operator = _operator(project, "params.ipynb", monkeypatch)
    operator.render_template_fields(_dag_run_context(run_type))
    forced = run_type == "asset_triggered"
    assert (operator.arguments[-1] == "--force") is forced
    assert StageRequest.from_argv(operator.arguments) == StageRequest(
        project.pipeline, "only", "r1", promoted=None, force=forced
    )
    operator.execute(context=_dag_run_context(run_type))
    assert len(probed) == (0 if forced else 1)
    second = json.loads((project.attempts("ops", "only")[1] / "manifest.json").read_text())
    assert (second.get("reused") is None) is forced  # forced: the notebook ran; else the stage command reused


@pytest.mark.parametrize(
    ("phase", "code", "image_id", "outcome"),
    [
        ("Succeeded", 0, DIGEST, "success"),
        ("Failed", 3, DIGEST, "retried"),  # a failed stage still says what it ran
        ("Failed", 1, DIGEST, "failed"),
        ("Pending", None, "", "retried"),  # never started (an image pull that failed): no digest to say
    ],
)
def test_the_image_a_pod_ran_is_logged_and_pushed_to_xcom(
    monkeypatch: pytest.MonkeyPatch,
    phase: str,
    code: int | None,
    image_id: str,
    outcome: str,
) -> None:
    """After the pod, the kubelet's image id of the stage container (``repo@sha256:...``) goes to the
    task log and to the XCom ``image_digest``, whatever the pod's outcome; the outcome is unchanged."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from nbops.airflow.operator import XCOM_IMAGE_DIGEST, NbopsStageOperator

    base = mock.Mock(side_effect=None if outcome == "success" else AirflowException("pod failed"))
    monkeypatch.setattr(NbopsStageOperator, "pod_manager", mock.Mock(), raising=False)
    monkeypatch.setattr(KubernetesPodOperator, "cleanup", base)
    log = _recorded_log(monkeypatch)
    operator = NbopsStageOperator(task_id="t", name="t", namespace="nbops", image="nbops-runner:0.1", cmds=["nbops"])
    remote, ti = _pod(phase, code, image_id), mock.Mock()
    if outcome == "success":
        operator.cleanup(remote, remote, context={"ti": ti})
    else:
        with pytest.raises(AirflowException) as caught:
            operator.cleanup(remote, remote, context={"ti": ti})
        assert isinstance(caught.value, AirflowFailException) is (outcome == "failed")
    logged = [c.args for c in log.info.call_args_list]
    assert base.call_args.kwargs["context"] == {"ti": ti}  # the provider's cleanup gets the context on
    pushed = [c.kwargs for c in ti.xcom_push.call_args_list]
    if image_id:
        assert pushed == [{"key": XCOM_IMAGE_DIGEST, "value": DIGEST}]
        assert ("pod %s ran image %s", "p-1", DIGEST) in logged, logged
    else:
        assert pushed == []
        assert not [a for a in logged if "ran image" in a[0]], logged


def _recorded_log(monkeypatch: pytest.MonkeyPatch) -> mock.Mock:
    """The operator's task log, recorded (Airflow's own logger writes wherever logging is configured)."""
    from nbops.airflow.operator import NbopsStageOperator

    log = mock.Mock()
    monkeypatch.setattr(NbopsStageOperator, "log", property(lambda self: log))
    return log


def test_an_xcom_that_cannot_be_pushed_leaves_the_outcome_to_the_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    from nbops.airflow.operator import NbopsStageOperator

    base = mock.Mock()
    monkeypatch.setattr(NbopsStageOperator, "pod_manager", mock.Mock(), raising=False)
    monkeypatch.setattr(KubernetesPodOperator, "cleanup", base)
    log = _recorded_log(monkeypatch)
    operator = NbopsStageOperator(task_id="t", name="t", namespace="nbops", image="nbops-runner:0.1", cmds=["nbops"])
    ti = mock.Mock()
    ti.xcom_push.side_effect = ConnectionError("supervisor gone")
    remote = _pod("Succeeded", 0, DIGEST)
    operator.cleanup(remote, remote, context={"ti": ti})  # no exception: the pod succeeded
    assert base.called
    assert log.info.call_args.args == ("pod %s ran image %s", "p-1", DIGEST)
    warning = log.warning.call_args.args
    assert warning[0] % warning[1:] == "image digest not pushed to XCom: ConnectionError: supervisor gone"


def test_the_provider_s_own_pod_flow_hands_the_finished_pod_to_the_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The KubernetesPodOperator's ``execute`` with the cluster calls faked (as the provider's own
    tests fake them): the image id comes from the pod as it finished, read after completion,
    and reaches the task instance's XCom through the provider's cleanup call."""
    from nbops.airflow.operator import XCOM_IMAGE_DIGEST, NbopsStageOperator

    monkeypatch.setenv("NBOPS_BACKEND", "kubernetes")
    started, finished = _pod("Running", None), _pod("Succeeded", 0, DIGEST)
    manager = mock.Mock()
    manager.await_pod_completion.return_value = finished
    monkeypatch.setattr(NbopsStageOperator, "pod_manager", manager, raising=False)
    for name, value in {
        "build_pod_request_obj": started,
        "get_or_create_pod": started,
        "find_pod": started,
        "await_pod_start": None,
        "await_init_containers_completion": None,
        "await_pod_completion": None,
        "is_istio_enabled": False,
    }.items():
        monkeypatch.setattr(NbopsStageOperator, name, mock.Mock(return_value=value))
    operator = NbopsStageOperator(
        task_id="t",
        name="t",
        namespace="nbops",
        image="nbops-runner:0.1",
        cmds=["nbops"],
        arguments=["close-run", "--run-id", "r1"],
        env_vars={"MLFLOW_TRACKING_URI": "http://mlflow:5000", "NBOPS_ARTIFACT_ROOT": "s3://bucket/prod"},
        on_finish_action="delete_succeeded_pod",  # as the DAG's pods
    )
    ti = mock.Mock()
    operator.execute(context={"ti": ti})
    pushed = {c.kwargs["key"]: c.kwargs["value"] for c in ti.xcom_push.call_args_list}
    assert pushed[XCOM_IMAGE_DIGEST] == DIGEST
    assert pushed["pod_name"] == "p-1"  # the provider's own pushes, to the same task instance
    manager.delete_pod.assert_called_once_with(finished)
