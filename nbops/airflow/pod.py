"""The stage pod: KubernetesPodOperator arguments for one stage of a promoted pipeline.

Everything here is built once at parse time from the lock; only ``arguments`` and
``env_vars`` hold templates (the operator's only template fields), rendered from the DAG
run when the task starts.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from kubernetes.client import models as k8s

from nbops.airflow.params import locked_stage, params_argument
from nbops.airflow.settings import POD_ARTIFACT_ROOT
from nbops.context import ENV_AIRFLOW, ENV_APPROVER, ENV_IMAGE, ENV_TRIGGER, ENV_TRIGGERED_BY
from nbops.graph import APPROVE_TASK, CLOSE_TASK, DRIFT_TASK, GATE_TASK, MONITOR_STAGE, PROMOTE_TASK
from nbops.rundate import ENV_RUN_DATE
from nbops.stage.result import stage_argv
from nbops.status import ExitCode
from nbops.storage.layout import ENV_ARTIFACT_ROOT, MONITOR_RUN_PREFIX
from nbops.tracking.store import ENV_TRACKING_URI

GPU_RESOURCE = "nvidia.com/gpu"
USER_ID = 10001
HOME = "/home/nbops"
# Margin above the stage timeout: pod scheduling and image pull, then the stage command's
# own SIGTERM grace period before Airflow gives up on the task.
TIMEOUT_MARGIN_S = 120
LABEL_PIPELINE = "nbops.io/pipeline"
LABEL_STAGE = "nbops.io/stage"
ANNOTATION_SHA = "nbops.io/notebook-sha256"
ANNOTATION_LOCK = "nbops.io/lock-sha256"
ANNOTATION_NOTEBOOK = "nbops.io/notebook"
SAFE_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
# The pods that run no notebook (close_run, retrain_gate, promote_champion, drift_trigger):
# a small footprint, retried a few times (they only talk to the stores).
CLOSE_RESOURCES = {"cpu": "100m", "memory": "512Mi"}
CLOSE_RETRIES = 3
CLOSE_TIMEOUT_S = 600
RUN_ID = "{{ run_id }}"
MONITOR_RUN_ID = MONITOR_RUN_PREFIX + "{{ run_id }}"
"""The nbops run id of a monitor DAG run. Prefixed: a monitor and a training DAG on the same
schedule get the same Airflow run id, and the two runs' records must not merge."""
RUN_DATE = "{{ (dag_run.logical_date or dag_run.run_after).strftime('%Y-%m-%d') }}"
"""``NBOPS_RUN_DATE``: the DAG run's logical date, or its run-after date when it has none
(asset-triggered runs), in UTC like the DAGs' schedules."""
ASSET_TRIGGERED = "asset_triggered"
"""``dag_run.run_type`` of a DAG run the drift asset started (Airflow 3's ``DagRunType``)."""
TRIGGER = f"{{{{ 'drift' if dag_run.run_type == '{ASSET_TRIGGERED}' else 'airflow' }}}}"
"""``NBOPS_TRIGGER`` (the pipeline run's ``nbops.trigger`` tag): ``drift`` for a run the drift
asset started, else ``airflow``."""
APPROVER = (
    f"{{{{ ((ti.xcom_pull(task_ids='{APPROVE_TASK}') or {{}}).get('responded_by_user') or {{}}).get('name') or '' }}}}"
)
"""Who answered ``approve_champion`` (its result), as ``nbops approve`` records the approver."""
TRIGGERING_USER = "{{ dag_run.triggering_user_name | default('', true) }}"
"""``NBOPS_TRIGGERED_BY``: the Airflow user who triggered the DAG run (the UI, the REST API,
``airflow dags trigger``; ``dag_test`` under ``airflow dags test``); empty for a run the scheduler
or an asset event started, which has none."""
MLFLOW_CREDENTIALS_SECRET = "nbops-mlflow-credentials"  # noqa: S105 - a Secret's name, not its content
"""The Secret, in the pods' namespace, whose keys ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD`` MLflow's client reads: the pipeline's account on a tracking server
with authentication (deploy/k8s/mlflow.yaml). Every pod of a generated DAG takes it, optionally:
without the Secret (a server without authentication) the pods start all the same."""


def label_value(text: str) -> str:
    """``text`` as a valid label value: at most 63 characters, alphanumeric at both ends."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)


def stage_command(lock_sha256: str, stage: str, params_json: str, run_id: str = RUN_ID) -> list[str]:
    """The stage command line after ``nbops``: the same in a pod and in the local backend; run id
    and parameters are templates. An asset-triggered run adds ``--force`` when the task renders
    (:meth:`nbops.airflow.operator.NbopsStageOperator.render_template_fields`)."""
    return stage_argv(promoted=lock_sha256, stage=stage, run_id=run_id, params_json=params_json)


def resources(stage: dict[str, Any]) -> k8s.V1ResourceRequirements:
    """Requests for CPU and memory; memory and GPUs also as limits (no CPU limit: no throttling)."""
    res = stage["resources"]
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if res.get("cpu"):
        requests["cpu"] = res["cpu"]
    if res.get("memory"):
        requests["memory"] = limits["memory"] = res["memory"]
    if res.get("gpu"):
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(res["gpu"])
    return k8s.V1ResourceRequirements(requests=requests or None, limits=limits or None)


def tolerations(stage: dict[str, Any]) -> list[k8s.V1Toleration]:
    """The stage's tolerations, plus one for GPU nodes' taint when the stage asks for GPUs."""
    out = [
        k8s.V1Toleration(
            key=t.get("key"),
            operator=t.get("operator"),
            value=t.get("value"),
            effect=t.get("effect"),
            toleration_seconds=t.get("toleration_seconds"),
        )
        for t in stage["tolerations"]
    ]
    if stage["resources"].get("gpu") and not any(t.get("key") == GPU_RESOURCE for t in stage["tolerations"]):
        out.append(k8s.V1Toleration(key=GPU_RESOURCE, operator="Exists", effect="NoSchedule"))
    return out


def volumes(claim: str | None) -> tuple[list[k8s.V1Volume], list[k8s.V1VolumeMount]]:
    """Writable scratch for a read-only root filesystem, and the artifact claim if any."""
    vols = [
        k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource()),
        k8s.V1Volume(name="home", empty_dir=k8s.V1EmptyDirVolumeSource()),
    ]
    mounts = [
        k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),  # noqa: S108 - the pod's own emptyDir
        k8s.V1VolumeMount(name="home", mount_path=HOME),
    ]
    if claim:
        vols.append(
            k8s.V1Volume(
                name="artifacts", persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=claim)
            )
        )
        mounts.append(k8s.V1VolumeMount(name="artifacts", mount_path=POD_ARTIFACT_ROOT))
    return vols, mounts


def env_from(secrets: list[str]) -> list[k8s.V1EnvFromSource]:
    """The MLflow credentials (optional), then the secrets the spec names (required; the later
    source wins on a key both hold, so a stage's own secret may carry other credentials)."""
    named = [k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=s)) for s in secrets]
    if MLFLOW_CREDENTIALS_SECRET in secrets:
        return named
    credentials = k8s.V1SecretEnvSource(name=MLFLOW_CREDENTIALS_SECRET, optional=True)
    return [k8s.V1EnvFromSource(secret_ref=credentials), *named]


def env_vars(image: str) -> dict[str, str]:
    """Where to record, which DAG run and try this is, its run date and who triggered it
    (templates, rendered per task) and, so the record can name it, the image (a literal: Jinja
    in the spec is never rendered)."""
    env = {
        ENV_TRACKING_URI: f"{{{{ nbops_setting('{ENV_TRACKING_URI}') }}}}",
        ENV_ARTIFACT_ROOT: f"{{{{ nbops_setting('{ENV_ARTIFACT_ROOT}') }}}}",
        ENV_TRIGGER: TRIGGER,
        ENV_AIRFLOW["dag_id"]: "{{ dag.dag_id }}",
        ENV_AIRFLOW["run_id"]: "{{ run_id }}",
        ENV_AIRFLOW["try_number"]: "{{ ti.try_number }}",
        ENV_RUN_DATE: RUN_DATE,
        ENV_TRIGGERED_BY: TRIGGERING_USER,
        "HOME": HOME,
    }
    if SAFE_IMAGE.match(image):
        env[ENV_IMAGE] = f"{{% raw %}}{image}{{% endraw %}}"
    return env


def pod_arguments(lock: dict[str, Any], lock_sha256: str, stage_name: str, run_id: str = RUN_ID) -> dict[str, Any]:
    """KubernetesPodOperator keyword arguments for one stage (or the monitor), from the lock's plain JSON.

    The monitor's stage command exits :attr:`ExitCode.SKIP` when the model has no champion yet
    (nothing to compare with, as ``nbops monitor`` says): the task is skipped, and so is
    ``drift_trigger`` after it; the DAG run succeeds and sends no failure alert."""
    locked = locked_stage(lock, stage_name)
    stage = locked["settings"]
    arguments = stage_command(lock_sha256, stage_name, params_argument(lock, stage_name), run_id)
    annotations = {
        ANNOTATION_SHA: locked["sha256"],
        ANNOTATION_LOCK: lock_sha256,
        ANNOTATION_NOTEBOOK: stage["notebook"],
    }
    pod = _pod(lock, stage_name, stage, arguments, annotations)
    if stage_name == MONITOR_STAGE:
        pod["skip_on_exit_code"] = int(ExitCode.SKIP)
    return pod


def service_arguments(
    lock: dict[str, Any], lock_sha256: str, task_id: str, arguments: list[str], monitor: bool = False
) -> dict[str, Any]:
    """The pod of a task that runs an nbops command but no notebook (closing the record, the gate,
    the approved promotion, the drift check).

    The pipeline's default image and placement, a small footprint, and the secrets of what the
    DAG runs (the stages, or the monitor): whatever reaches the tracking server, the artifact
    store and the alerts' services.
    """
    spec = lock["spec"]
    defaults = spec["defaults"]
    runs = [locked_stage(lock, MONITOR_STAGE)] if monitor else list(lock["stages"].values())
    settings = {
        "image": defaults.get("image") or spec["image"],
        "resources": CLOSE_RESOURCES,
        "secrets": sorted({s for locked in runs for s in locked["settings"]["secrets"]}),
        "node_selector": defaults.get("node_selector") or {},
        "tolerations": defaults.get("tolerations") or [],
        "retries": CLOSE_RETRIES,
        "timeout": CLOSE_TIMEOUT_S,
    }
    return _pod(lock, task_id, settings, arguments, {ANNOTATION_LOCK: lock_sha256})


def close_arguments(lock: dict[str, Any], lock_sha256: str, monitor: bool = False) -> dict[str, Any]:
    """The pod of the DAG's last task: ``nbops close-run`` archives and closes the run's record."""
    return service_arguments(lock, lock_sha256, CLOSE_TASK, close_command(lock_sha256, monitor), monitor)


def close_command(lock_sha256: str, monitor: bool = False) -> list[str]:
    """``close-run`` with the DAG run rendered as JSON (conf masked by the command itself); a
    monitor DAG's run says so, since its record holds the monitor and no stage."""
    kind = '"monitor": true, ' if monitor else ""
    airflow_json = (
        '{{ {"dag_id": dag.dag_id, "run_id": run_id, ' + kind + '"logical_date": '
        '(dag_run.logical_date or dag_run.run_after).isoformat(), "conf": dag_run.conf or {}} | tojson }}'
    )
    run_id = MONITOR_RUN_ID if monitor else RUN_ID
    return ["close-run", "--promoted", lock_sha256, "--run-id", run_id, "--airflow-json", airflow_json]


def points_arguments(lock: dict[str, Any], lock_sha256: str, stage: str, pod_name: str) -> dict[str, Any]:
    """``nbops sweep-points``: before a ``foreach_from`` stage, the list its mapped task expands over
    (one pod name per point, pushed as the task's XCom)."""
    command = ["sweep-points", "--promoted", lock_sha256, "--stage", stage, "--run-id", RUN_ID, "--pod-name", pod_name]
    arguments = service_arguments(lock, lock_sha256, points_task_id(stage), command)
    return {**arguments, "do_xcom_push": True}


def points_task_id(stage: str) -> str:
    """The task that lists a ``foreach_from`` stage's points."""
    return f"{stage}_points"


def gate_arguments(lock: dict[str, Any], lock_sha256: str) -> dict[str, Any]:
    """``nbops gate``: challenger against champion, after the stage that registers the challenger.
    With manual approval it exits :attr:`ExitCode.SKIP` when nothing awaits approval (the gate kept the
    champion): the task is then skipped, and so are the approval and promotion after it, so no
    one is asked to approve nothing."""
    command = ["gate", "--promoted", lock_sha256, "--run-id", RUN_ID]
    arguments = service_arguments(lock, lock_sha256, GATE_TASK, command)
    if lock["spec"]["retrain"]["approval"] == "manual":
        return {**arguments, "skip_on_exit_code": int(ExitCode.SKIP)}
    return arguments


def promote_arguments(lock: dict[str, Any], lock_sha256: str) -> dict[str, Any]:
    """``nbops approve``: applies the approval given in Airflow (moves ``champion``), naming the
    Airflow user who approved."""
    command = ["approve", "--promoted", lock_sha256, "--run-id", RUN_ID]
    arguments = service_arguments(lock, lock_sha256, PROMOTE_TASK, command)
    return {**arguments, "env_vars": {**arguments["env_vars"], ENV_APPROVER: APPROVER}}


def drift_arguments(lock: dict[str, Any], lock_sha256: str) -> dict[str, Any]:
    """``nbops drift-check``: exit 0 when the monitor's trigger holds, :attr:`ExitCode.SKIP` (the task is
    skipped, so its asset event is not emitted) when it does not. That exit is the normal quiet
    day, so its pod is deleted like a successful one."""
    command = ["drift-check", "--promoted", lock_sha256, "--run-id", MONITOR_RUN_ID]
    arguments = service_arguments(lock, lock_sha256, DRIFT_TASK, command, monitor=True)
    return {**arguments, "skip_on_exit_code": int(ExitCode.SKIP), "on_finish_action": "delete_pod"}


def _pod(
    lock: dict[str, Any], task_id: str, stage: dict[str, Any], arguments: list[str], annotations: dict[str, str]
) -> dict[str, Any]:
    kube, flow, name = lock["spec"]["kubernetes"], lock["spec"]["airflow"], lock["spec"]["name"]
    vols, mounts = volumes(kube["artifacts_claim"])
    return {
        "task_id": task_id,
        "name": f"{name}-{task_id}",
        "namespace": kube["namespace"],
        "image": stage["image"],
        "image_pull_policy": kube["image_pull_policy"],
        "cmds": ["nbops"],
        "arguments": arguments,
        "env_vars": env_vars(stage["image"]),
        "env_from": env_from(list(stage["secrets"])),
        "container_resources": resources(stage),
        "node_selector": dict(stage["node_selector"]) or None,
        "tolerations": tolerations(stage),
        "service_account_name": kube["service_account"],
        "automount_service_account_token": False,
        "labels": {LABEL_PIPELINE: label_value(name), LABEL_STAGE: label_value(task_id)},
        "annotations": annotations,
        "security_context": k8s.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=USER_ID,
            run_as_group=USER_ID,
            fs_group=USER_ID,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        "container_security_context": k8s.V1SecurityContext(
            run_as_non_root=True,
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
        "volumes": vols,
        "volume_mounts": mounts,
        "get_logs": True,
        "startup_timeout_seconds": kube["startup_timeout"],
        "on_finish_action": "delete_succeeded_pod",
        "termination_grace_period": 30,
        # Kubernetes itself stops the pod (SIGTERM, then the grace period) if the stage overruns.
        "active_deadline_seconds": stage["timeout"] + TIMEOUT_MARGIN_S,
        "retries": stage["retries"],
        "retry_delay": timedelta(seconds=flow["retry_delay"]),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(seconds=flow["max_retry_delay"]),
        "execution_timeout": timedelta(seconds=stage["timeout"] + kube["startup_timeout"] + TIMEOUT_MARGIN_S),
    }
