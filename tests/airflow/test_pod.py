"""Every stage pod of the example and of a spec using every Kubernetes field, and the pods of the
gate, the approved promotion and the monitor DAG, built from the real generated DAGs, rendered
for a DAG run and validated strictly against Kubernetes' schema; the run date they carry, and
the --force and trigger of a run the drift asset started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.airflow.conftest import SCHEDULED_RUN_ID, dagbag, lock_sha256, render, serialize
from tests.airflow.loop import MONITOR_SECRET
from tests.conftest import Project, example_project, read_json
from tests.s3server import BUCKET, S3Server, started

pytestmark = pytest.mark.integration

K8S_VERSION = "1.37.0"
STAGES = ["ingest", "transform", "prepare", "train", "optimize", "evaluate"]
# Every pod's first envFrom: the MLflow account, optional so that a server without auth needs no Secret.
CREDENTIALS = {"secretRef": {"name": "nbops-mlflow-credentials", "optional": True}}


def load_dag(dags: Path, name: str) -> Any:
    from nbops.airflow import dag_from_lock

    return dag_from_lock(dags / f"{name}.lock.json")


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("example")
    project = example_project(root)
    result = project.nbops("promote", "pipeline.yaml")
    assert result.returncode == 0, result.stderr
    return project


@pytest.fixture(scope="module")
def every_field(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = Project(tmp_path_factory.mktemp("k8s"))
    project.add_notebook(
        "train", [("epochs: int = 3  # passes over the data\nrate = 0.1", ["parameters"]), ("x = 1", [])]
    )
    project.add_notebook("report", [("print('report')", [])])
    project.write_spec(
        {
            "name": "gpu-train",
            "schedule": "@daily",
            "image": "registry.example.com/nbops-runner:0.1",
            "defaults": {"retries": 3, "timeout": 900, "resources": {"cpu": "500m", "memory": "1Gi"}},
            "kubernetes": {
                "namespace": "ml-stages",
                "service_account": "trainer",
                "artifacts_claim": "ml-artifacts",
                "startup_timeout": 300,
                "image_pull_policy": "Always",
            },
            "airflow": {"max_active_runs": 2, "retry_delay": 30, "max_retry_delay": 600, "tags": ["gpu"]},
            "stages": {
                "train": {
                    "notebook": "nb/train.ipynb",
                    "image": "registry.example.com/nbops-runner-gpu:0.1",
                    "parameters": {"epochs": 10},
                    "resources": {"cpu": "4", "memory": "16Gi", "gpu": 2},
                    "node_selector": {"pool": "gpu", "cloud.google.com/gke-accelerator": "nvidia-l4"},
                    "tolerations": [
                        {
                            "key": "dedicated",
                            "operator": "Equal",
                            "value": "ml",
                            "effect": "NoExecute",
                            "toleration_seconds": 60,
                        },
                    ],
                    "secrets": ["warehouse-credentials", "s3-writer"],
                    "timeout": 7200,
                },
                "report": {"notebook": "nb/report.ipynb", "needs": ["train"], "retries": 0},
            },
        }
    )
    result = project.nbops("promote", "pipeline.yaml")
    assert result.returncode == 0, result.stderr
    return project


def test_every_example_pod_validates_strictly(example: Project) -> None:
    dag = load_dag(example.root / "dags", "diagnosis")
    lock = read_json(example.root / "dags" / "diagnosis.lock.json")
    lock_sha = hashlib_of(example.root / "dags" / "diagnosis.lock.json")
    assert [t.task_id for t in dag.tasks] == ["check_conf", *STAGES, "retrain_gate", "close_run", "stages_succeeded"]
    for stage in STAGES:
        pod = serialize(render(dag.get_task(stage)))
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
        spec, meta = pod["spec"], pod["metadata"]
        container = spec["containers"][0]
        assert meta["namespace"] == "nbops"
        assert meta["labels"]["nbops.io/pipeline"] == "diagnosis"
        assert meta["labels"]["nbops.io/stage"] == stage
        assert meta["annotations"]["nbops.io/notebook-sha256"] == lock["stages"][stage]["sha256"]
        assert container["image"] == "nbops-runner:0.1"
        assert container["command"] == ["nbops"]
        args = container["args"]
        assert args[:5] == ["exec-stage", "--promoted", lock_sha, "--stage", stage]
        assert args[5:7] == ["--run-id", SCHEDULED_RUN_ID]
        expected = {k.split(".", 1)[1]: v for k, v in dag.params.validate().items() if k.startswith(f"{stage}.")}
        assert json.loads(args[8]) == expected
        assert container["resources"]["requests"]["memory"] == ("4Gi" if stage == "optimize" else "2Gi")
        assert spec["serviceAccountName"] == "nbops-stage"
        assert spec["automountServiceAccountToken"] is False
        assert spec["restartPolicy"] == "Never"
        assert container["envFrom"] == [CREDENTIALS]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["NBOPS_TRIGGERED_BY"] == ""  # a scheduled run: nobody triggered it


def test_the_close_run_pod_validates_and_carries_the_dag_run(example: Project) -> None:
    dag = load_dag(example.root / "dags", "diagnosis")
    lock_sha = hashlib_of(example.root / "dags" / "diagnosis.lock.json")
    conf = {"train.C": 0.5}
    pod = serialize(render(dag.get_task("close_run"), conf=conf))
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    container = pod["spec"]["containers"][0]
    args = container["args"]
    assert args[:6] == ["close-run", "--promoted", lock_sha, "--run-id", SCHEDULED_RUN_ID, "--airflow-json"]
    assert json.loads(args[6]) == {
        "dag_id": "diagnosis",
        "run_id": SCHEDULED_RUN_ID,
        "logical_date": "2026-11-21T02:00:00+00:00",
        "conf": conf,
    }
    assert container["image"] == "nbops-runner:0.1"
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "512Mi"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["metadata"]["annotations"] == {"nbops.io/lock-sha256": lock_sha}


def hashlib_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_params_json_carries_spec_defaults_and_conf(example: Project) -> None:
    dag = load_dag(example.root / "dags", "diagnosis")
    args = serialize(render(dag.get_task("ingest")))["spec"]["containers"][0]["args"]
    assert json.loads(args[8])["batch_size"] == 3000  # pipeline.yaml's value, not the notebook's
    dag = load_dag(example.root / "dags", "diagnosis")
    args = serialize(render(dag.get_task("ingest"), conf={"ingest.batch_size": 123}))["spec"]["containers"][0]["args"]
    # `${run_date}` travels as written: the stage command resolves it from NBOPS_RUN_DATE.
    assert json.loads(args[8]) == {"as_of": "${run_date}", "batch_size": 123, "drift_per_month": 0.02, "seed": 7}


def test_every_kubernetes_field_maps_to_the_pod(every_field: Project) -> None:
    dag = load_dag(every_field.root / "dags", "gpu-train")
    assert dag.max_active_runs == 2 and "gpu" in dag.tags and dag.catchup is False
    task = dag.get_task("train")
    assert task.retries == 3
    assert task.retry_delay.total_seconds() == 30 and task.max_retry_delay.total_seconds() == 600
    assert task.retry_exponential_backoff == 2.0
    assert task.execution_timeout.total_seconds() == 7200 + 300 + 120
    assert task.on_finish_action.value == "delete_succeeded_pod"
    assert task.get_logs is True and task.startup_timeout_seconds == 300
    pod = serialize(render(task, try_number=2))
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    spec = pod["spec"]
    container = spec["containers"][0]
    assert pod["metadata"]["namespace"] == "ml-stages"
    assert container["image"] == "registry.example.com/nbops-runner-gpu:0.1"
    assert container["imagePullPolicy"] == "Always"
    assert container["resources"] == {
        "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"},
        "limits": {"memory": "16Gi", "nvidia.com/gpu": "2"},
    }
    assert spec["nodeSelector"] == {"pool": "gpu", "cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute", "tolerationSeconds": 60} in (
        spec["tolerations"]
    )
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert container["envFrom"] == [
        CREDENTIALS,
        {"secretRef": {"name": "warehouse-credentials"}},
        {"secretRef": {"name": "s3-writer"}},
    ]
    assert spec["serviceAccountName"] == "trainer"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    ctx = container["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False and ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {"/tmp": "tmp", "/home/nbops": "home", "/nbops/artifacts": "artifacts"}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["tmp"]["emptyDir"] == {} and volumes["home"]["emptyDir"] == {}
    assert volumes["artifacts"]["persistentVolumeClaim"] == {"claimName": "ml-artifacts"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NBOPS_ARTIFACT_ROOT"] == "/nbops/artifacts"
    assert env["NBOPS_AIRFLOW_DAG_ID"] == "gpu-train"
    assert env["NBOPS_AIRFLOW_RUN_ID"] == SCHEDULED_RUN_ID
    assert env["NBOPS_AIRFLOW_TRY_NUMBER"] == "2"
    assert env["HOME"] == "/home/nbops"
    assert pod["metadata"]["labels"]["nbops.io/stage"] == "train"
    assert json.loads(container["args"][8]) == {"epochs": 10, "rate": 0.1}
    report = serialize(render(dag.get_task("report")))
    kubernetes_validate.validate(report, K8S_VERSION, strict=True)
    assert "tolerations" not in report["spec"] or all(
        t.get("key") != "nvidia.com/gpu" for t in report["spec"]["tolerations"]
    )
    assert dag.get_task("report").upstream_task_ids == {"train"}


def test_invalid_pod_is_caught_by_the_validator(every_field: Project) -> None:
    """The strict validation above can fail: a field Kubernetes does not know is rejected."""
    pod = serialize(render(load_dag(every_field.root / "dags", "gpu-train").get_task("report")))
    pod["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def run_pod_command(container: dict[str, Any], env: dict[str, str], home: Path) -> subprocess.CompletedProcess[str]:
    """The container's exact command and args with its env, ``home`` standing in for its emptyDir."""
    home.mkdir()
    bin_dir = Path(sys.executable).parent  # where the runner image puts `nbops`: first on PATH
    return subprocess.run(
        [*container["command"], *container["args"]],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", **env, "HOME": str(home)},
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_pods_exact_command_line_runs_here(every_field: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rendered container command and args, run with the pod's env (store paths mapped here)."""
    dag = load_dag(every_field.root / "dags", "gpu-train")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", every_field.tracking_uri)
    monkeypatch.setenv("NBOPS_ARTIFACT_ROOT", str(every_field.root / ".nbops" / "artifacts"))
    pod = serialize(render(dag.get_task("train")))
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["NBOPS_ARTIFACT_ROOT"] == str(every_field.root / ".nbops" / "artifacts")
    result = run_pod_command(container, env, every_field.root / "home")
    assert result.returncode == 0, result.stderr
    run_dir = every_field.root / ".nbops" / "artifacts" / "runs" / "gpu-train" / "scheduled__2026-11-21T02-00-00-00-00"
    manifest = read_json(run_dir / "train" / "attempt-1" / "manifest.json")
    assert manifest["parameters"] == {"epochs": 10, "rate": 0.1}
    assert manifest["image"] == "registry.example.com/nbops-runner-gpu:0.1"
    runs = every_field.runs("gpu-train")
    parent = next(r for r in runs if r.data.tags.get("nbops.kind") == "pipeline")
    assert parent.data.tags["airflow.dag_id"] == "gpu-train"
    assert parent.data.tags["airflow.run_id"] == SCHEDULED_RUN_ID
    assert parent.data.tags["airflow.try_number"] == "1"
    assert parent.data.tags["nbops.trigger"] == "airflow"


@pytest.fixture
def s3() -> Iterator[S3Server]:
    yield from started()


def test_a_stage_pod_on_an_s3_store_runs_here(project: Project, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """The object-store deployment: no claim, credentials from a Secret, lock and notebook from S3."""
    from nbops.promote import promote

    project.add_notebook("fit", [("n: int = 2", ["parameters"]), ("import nbops\nnbops.log_metric('n2', n * 2)", [])])
    project.write_spec(
        {
            "name": "on-s3",
            "kubernetes": {"artifacts_claim": None},
            "stages": {"fit": {"notebook": "nb/fit.ipynb", "secrets": ["s3-credentials"]}},
        }
    )
    root = f"s3://{BUCKET}/prod"
    for name, value in {**s3.env(), "NBOPS_ARTIFACT_ROOT": root, "NBOPS_CACHE_DIR": str(project.root / "c")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", project.tracking_uri)
    sha = promote(project.pipeline, project.root / "dags").lock_sha256
    assert s3.keys(f"prod/locks/{sha}.json")

    pod = serialize(render(load_dag(project.root / "dags", "on-s3").get_task("fit")))
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    container = pod["spec"]["containers"][0]
    assert container["envFrom"] == [CREDENTIALS, {"secretRef": {"name": "s3-credentials"}}]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp", "/home/nbops"}  # no claim
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["NBOPS_ARTIFACT_ROOT"] == root
    result = run_pod_command(container, {**env, **s3.env()}, project.root / "pod-home")  # s3.env(): the Secret
    assert result.returncode == 0, result.stderr
    run = "scheduled__2026-11-21T02-00-00-00-00"
    manifest = json.loads(s3.object(f"prod/runs/on-s3/{run}/fit/attempt-1/manifest.json"))
    assert manifest["parameters"] == {"n": 2}
    [stage_run] = [r for r in project.runs("on-s3") if r.data.tags.get("nbops.kind") == "stage"]
    assert stage_run.data.metrics == {"n2": 4} and stage_run.info.status == "FINISHED"
    assert stage_run.info.artifact_uri.startswith(f"{root}/mlflow/")
    assert list((project.root / "pod-home" / ".cache" / "nbops").rglob("notebooks/*.ipynb"))
    # The pod's log (what Airflow shows as the task's log) follows the cells; from a workstation the
    # attempt is read back from the store by the run id Airflow gave it.
    pod_log = result.stdout + result.stderr
    assert "nbops: cell 1/3 started" in pod_log and "nbops: cell 3/3 done in" in pod_log
    logs = subprocess.run(
        [sys.executable, "-m", "nbops", "logs", "fit", "--run", SCHEDULED_RUN_ID, "--pipeline", str(project.pipeline)],
        env={**os.environ, "NBOPS_CACHE_DIR": str(project.root / "workstation")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert logs.returncode == 0, logs.stderr
    assert "[injected parameters] In [2]: n = 2" in logs.stdout and "[1] In [3]: import nbops" in logs.stdout


def test_the_gate_approval_and_monitor_pods_validate_strictly(loop_manual: Project) -> None:
    dags = dagbag(loop_manual.root / "dags")
    training, monitor = dags["loop"], dags["loop_monitor"]
    sha = lock_sha256(loop_manual, "loop")
    answered = {"chosen_options": ["Approve"], "responded_by_user": {"id": "7", "name": "ada"}}
    pods = {
        ("loop", "retrain_gate"): render(training.get_task("retrain_gate")),
        ("loop", "promote_champion"): render(
            training.get_task("promote_champion"), xcom={"approve_champion": answered}
        ),
        ("loop_monitor", "monitor"): render(monitor.get_task("monitor"), conf={"monitor.drift": 0.7}),
        ("loop_monitor", "drift_trigger"): render(monitor.get_task("drift_trigger")),
        ("loop_monitor", "close_run"): render(monitor.get_task("close_run"), conf={"monitor.drift": 0.7}),
    }
    args = {}
    for (dag_id, task_id), built in pods.items():
        pod = serialize(built)
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
        container = pod["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["NBOPS_RUN_DATE"] == "2026-11-21", task_id  # the scheduled run's logical date
        assert env["NBOPS_AIRFLOW_DAG_ID"] == dag_id and env["NBOPS_AIRFLOW_RUN_ID"] == SCHEDULED_RUN_ID
        labels = pod["metadata"]["labels"]
        assert (labels["nbops.io/pipeline"], labels["nbops.io/stage"]) == ("loop", task_id)
        assert container["command"] == ["nbops"]
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        if task_id != "monitor":
            assert container["resources"]["requests"] == {"cpu": "100m", "memory": "512Mi"}, task_id
        assert container["envFrom"][0] == CREDENTIALS, task_id
        secrets = [s["secretRef"] for s in container["envFrom"][1:]]
        assert secrets == ([{"name": MONITOR_SECRET}] if dag_id == "loop_monitor" else []), task_id
        args[task_id] = (container["args"], env)
    run = ["--run-id", SCHEDULED_RUN_ID]
    monitor_run = ["--run-id", f"monitor__{SCHEDULED_RUN_ID}"]
    assert args["retrain_gate"][0] == ["gate", "--promoted", sha, *run]
    assert args["promote_champion"][0] == ["approve", "--promoted", sha, *run]
    assert args["promote_champion"][1]["NBOPS_APPROVER"] == "ada"
    assert args["monitor"][0][:7] == ["exec-stage", "--promoted", sha, "--stage", "monitor", *monitor_run]
    assert json.loads(args["monitor"][0][8]) == {"drift": 0.7, "as_of": "${run_date}"}
    assert args["drift_trigger"][0] == ["drift-check", "--promoted", sha, *monitor_run]
    close = args["close_run"][0]
    assert close[:6] == ["close-run", "--promoted", sha, *monitor_run, "--airflow-json"]
    assert json.loads(close[6]) == {
        "dag_id": "loop_monitor",
        "run_id": SCHEDULED_RUN_ID,
        "monitor": True,
        "logical_date": "2026-11-21T02:00:00+00:00",
        "conf": {"monitor.drift": 0.7},
    }
    watched = serialize(pods[("loop_monitor", "monitor")])["metadata"]["annotations"]
    assert watched["nbops.io/notebook"] == "nb/watch.ipynb"
    assert (
        watched["nbops.io/notebook-sha256"]
        == read_json(loop_manual.root / "dags" / "loop.lock.json")["monitor"]["sha256"]
    )


def test_nobody_named_when_the_approval_has_no_answer(loop_manual: Project) -> None:
    """Marked success by hand, or timed out to its default: the approver falls back to nbops' own."""
    task = dagbag(loop_manual.root / "dags")["loop"].get_task("promote_champion")
    env = {e["name"]: e.get("value") for e in serialize(render(task))["spec"]["containers"][0]["env"]}
    assert env["NBOPS_APPROVER"] == ""


def _rendered_run_date(task: Any, logical_date: datetime | None, run_after: datetime) -> dict[str, str]:
    """Render ``task`` through a real task instance of a DAG run, as a worker does: its environment."""
    return _rendered(task, logical_date, run_after)[1]


def _rendered(
    task: Any, logical_date: datetime | None, run_after: datetime, triggering_user_name: str | None = None
) -> tuple[list[str], dict[str, str]]:
    """Render ``task`` through a real task instance of a DAG run, as a worker does: its command
    line and environment. No logical date: the run the drift asset started; ``triggering_user_name``:
    the Airflow user who triggered it (None for the scheduler's runs)."""
    from uuid import uuid4

    from airflow.sdk.api.datamodels._generated import DagRun, DagRunState, DagRunType, TIRunContext
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    kind = DagRunType.SCHEDULED if logical_date else DagRunType.ASSET_TRIGGERED
    dag_run = DagRun(
        dag_id=task.dag.dag_id,
        run_id=f"{kind.value}__{run_after.isoformat()}",
        logical_date=logical_date,
        data_interval_start=logical_date,
        data_interval_end=logical_date,
        run_after=run_after,
        start_date=run_after,
        end_date=None,
        run_type=kind,
        state=DagRunState.RUNNING,
        consumed_asset_events=[],
        partition_key=None,
        conf={},
        triggering_user_name=triggering_user_name,
    )
    ti = RuntimeTaskInstance.model_construct(
        id=uuid4(),
        task_id=task.task_id,
        dag_id=task.dag.dag_id,
        run_id=dag_run.run_id,
        try_number=1,
        map_index=-1,
        task=task,
        start_date=run_after,
        dag_version_id=uuid4(),
        _ti_context_from_server=TIRunContext(dag_run=dag_run, max_tries=0),
    )
    context = ti.get_template_context()
    task.render_template_fields(context)
    return list(task.arguments), {e.name: e.value for e in task.env_vars}


@pytest.mark.parametrize(
    ("logical_date", "run_after", "expected"),
    [
        (datetime(2026, 11, 21, 2, tzinfo=UTC), datetime(2026, 11, 22, 2, tzinfo=UTC), "2026-11-21"),
        # Asset-triggered: no logical date (and no `ds` in the context), the run-after date instead.
        (None, datetime(2026, 12, 3, 23, 59, tzinfo=UTC), "2026-12-03"),
    ],
)
def test_the_run_date_is_the_logical_date_else_the_run_after_date(
    loop_manual: Project,
    monkeypatch: pytest.MonkeyPatch,
    logical_date: datetime | None,
    run_after: datetime,
    expected: str,
) -> None:
    monkeypatch.setenv("NBOPS_BACKEND", "local")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", loop_manual.tracking_uri)
    monkeypatch.setenv("NBOPS_ARTIFACT_ROOT", str(loop_manual.root / ".nbops" / "artifacts"))
    dags = dagbag(loop_manual.root / "dags")
    for dag_id, task_id in [
        ("loop", "prepare"),
        ("loop", "retrain_gate"),
        ("loop", "close_run"),
        ("loop_monitor", "monitor"),
    ]:
        env = _rendered_run_date(dags[dag_id].get_task(task_id), logical_date, run_after)
        assert env["NBOPS_RUN_DATE"] == expected, (dag_id, task_id)


TRAINING_STAGES = ("prepare", "fit", "report")


@pytest.mark.parametrize("run_type", ["asset_triggered", "scheduled", "manual"])
def test_a_run_the_drift_asset_started_forces_every_stage_and_is_recorded_as_drift(
    loop_manual: Project, run_type: str
) -> None:
    """The asset-triggered training run: every stage command gets --force (no attempt is reused:
    the world drifted, which no key sees) and ``nbops.trigger`` says ``drift``. Any other run's
    pods are the scheduled run's, unchanged."""
    forced = run_type == "asset_triggered"
    training = dagbag(loop_manual.root / "dags")["loop"]  # fresh DAGs: rendering changes a task in place
    scheduled = dagbag(loop_manual.root / "dags")["loop"]
    for task_id in [*TRAINING_STAGES, "retrain_gate", "promote_champion", "close_run"]:
        pod = serialize(render(training.get_task(task_id), run_type=run_type))
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
        usual = serialize(render(scheduled.get_task(task_id)))
        args, usual_args = pod["spec"]["containers"][0].pop("args"), usual["spec"]["containers"][0].pop("args")
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].pop("env")}
        usual_env = {e["name"]: e.get("value") for e in usual["spec"]["containers"][0].pop("env")}
        assert env == {**usual_env, "NBOPS_TRIGGER": "drift" if forced else "airflow"}, task_id
        assert usual_env["NBOPS_TRIGGER"] == "airflow"
        if task_id in TRAINING_STAGES and forced:
            assert args[-1] == "--force" and len(args) == len(usual_args) + 1, task_id
            assert args[:8] == usual_args[:8] and json.loads(args[8]) == json.loads(usual_args[8]), task_id
        else:
            assert args == usual_args, task_id
        for built in (pod, usual):
            built["metadata"].pop("name")  # a random suffix
        assert pod == usual, task_id


def test_a_worker_renders_an_asset_triggered_run_s_stages_forced(
    loop_manual: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a real task instance of each kind of DAG run (Airflow's own ``run_type``)."""
    from nbops.stage.result import StageRequest

    monkeypatch.setenv("MLFLOW_TRACKING_URI", loop_manual.tracking_uri)
    monkeypatch.setenv("NBOPS_ARTIFACT_ROOT", str(loop_manual.root / ".nbops" / "artifacts"))
    drifted = datetime(2026, 12, 3, 7, tzinfo=UTC)
    for logical_date, forced in [(None, True), (datetime(2026, 12, 3, tzinfo=UTC), False)]:
        dags = dagbag(loop_manual.root / "dags")
        for stage in TRAINING_STAGES:
            args, env = _rendered(dags["loop"].get_task(stage), logical_date, drifted)
            assert StageRequest.from_argv(args).force is forced, stage
            assert env["NBOPS_TRIGGER"] == ("drift" if forced else "airflow"), stage
        args, env = _rendered(dags["loop"].get_task("retrain_gate"), logical_date, drifted)
        assert "--force" not in args and env["NBOPS_TRIGGER"] == ("drift" if forced else "airflow")


@pytest.mark.parametrize(("user", "expected"), [("ada", "ada"), (None, "")])
def test_who_triggered_the_dag_run_reaches_every_pod_and_the_local_stage_command(
    loop_manual: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, user: str | None, expected: str
) -> None:
    """``NBOPS_TRIGGERED_BY`` is the DAG run's ``triggering_user_name`` (Airflow's own DagRun, as the
    execution API hands it to a worker), empty for a scheduled run, which has none; the local
    backend's stage command inherits it as a pod would."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", loop_manual.tracking_uri)
    monkeypatch.setenv("NBOPS_ARTIFACT_ROOT", str(loop_manual.root / ".nbops" / "artifacts"))
    when = datetime(2026, 12, 3, 7, tzinfo=UTC)
    dags = dagbag(loop_manual.root / "dags")
    tasks = [("loop", t) for t in (*TRAINING_STAGES, "retrain_gate", "close_run")]  # approval: its XCom needs a worker
    for dag_id, task_id in [*tasks, ("loop_monitor", "monitor"), ("loop_monitor", "drift_trigger")]:
        _, env = _rendered(dags[dag_id].get_task(task_id), when, when, triggering_user_name=user)
        assert env["NBOPS_TRIGGERED_BY"] == expected, (dag_id, task_id)

    task = dags["loop"].get_task("prepare")  # rendered above
    seen = tmp_path / "triggered_by"
    script = f"import os, pathlib; pathlib.Path({str(seen)!r}).write_text(os.environ['NBOPS_TRIGGERED_BY'])"
    monkeypatch.setattr(type(task), "command_line", lambda self: [sys.executable, "-c", script])
    task.execute_local()
    assert seen.read_text() == expected


def test_a_stage_that_names_the_credentials_secret_requires_it_once() -> None:
    from nbops.airflow.pod import MLFLOW_CREDENTIALS_SECRET, env_from

    named = env_from([MLFLOW_CREDENTIALS_SECRET, "warehouse"])
    assert [(e.secret_ref.name, e.secret_ref.optional) for e in named] == [
        (MLFLOW_CREDENTIALS_SECRET, None),
        ("warehouse", None),
    ]
    assert [(e.secret_ref.name, e.secret_ref.optional) for e in env_from(["warehouse"])] == [
        (MLFLOW_CREDENTIALS_SECRET, True),
        ("warehouse", None),
    ]
