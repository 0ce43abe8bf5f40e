"""One operator for both backends: a KubernetesPodOperator that can run its command locally.

The backend is read when the task runs (``NBOPS_BACKEND`` or the Variable ``nbops_backend``),
so one DAG file serves a cluster and ``airflow dags test`` on a laptop. Locally the
operator runs the pod's own command line (``nbops`` + its rendered arguments, with the
pod's rendered environment) in a subprocess, so both backends execute the same thing.

After a pod, the operator says which image the kubelet ran (its ``repo@sha256:...`` image id)
in the task log and as the XCom ``image_digest``: a tag names an image, a digest names its
bytes. The worker does not write it into MLflow: the Airflow image carries no MLflow and the
worker holds no MLflow credentials.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
from kubernetes.config.config_exception import ConfigException

from nbops.airflow.pod import ASSET_TRIGGERED
from nbops.airflow.settings import backend
from nbops.context import ENV_IMAGE
from nbops.environment import overridden
from nbops.stage.process import stop
from nbops.stage.result import COMMAND, StageRequest
from nbops.status import ExitCode
from nbops.storage.layout import ENV_ARTIFACT_ROOT
from nbops.tracking.store import ENV_TRACKING_URI

POD_ONLY_ENV = ("HOME", ENV_IMAGE)
XCOM_IMAGE_DIGEST = "image_digest"
"""The XCom key of the image id a task's pod ran (``repo@sha256:...``, as the kubelet reports it)."""
RUN_HERE = (
    "To run the stages on this machine instead (`airflow dags test`, a laptop), set NBOPS_BACKEND=local "
    "in the Airflow environment or the Airflow Variable nbops_backend=local."
)


class NbopsStageOperator(KubernetesPodOperator):
    """Runs one nbops command (a stage's ``exec-stage``, or a task's such as ``close-run``), in a pod
    or (local backend) in a subprocess."""

    ui_color = "#e8f4fd"
    # Only these hold templates. Everything else comes from the spec verbatim: Jinja in an
    # image name or notebook path must not be able to read Variables or Connections.
    template_fields: Sequence[str] = ("arguments", "env_vars")
    # No __init__ of its own: Airflow would then merge (deep-copy) the DAG params once more per task.
    _proc: subprocess.Popen[str] | None = None
    _backend: str | None = None

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Render the command line and environment; in a DAG run the drift asset started, a stage
        command also gets ``--force``: the world drifted, which no reuse key can see, so every
        stage runs its notebook again (``NBOPS_TRIGGER`` renders as ``drift`` there)."""
        super().render_template_fields(context, jinja_env)
        if asset_triggered(context):
            try:
                request = self.stage_request()
            except ValueError as exc:  # left as it is: the stage command refuses it, and says why
                self.log.warning("not forced: %s", exc)
                return
            if request is not None and not request.force:
                self.arguments = replace(request, force=True).to_argv()
                self.log.info("asset-triggered DAG run: stage %s runs with --force (no reuse)", request.stage)

    def stage_request(self) -> StageRequest | None:
        """What the (rendered) command line asks ``exec-stage`` for; None for another command.

        Raises:
            StageArgvError: an ``exec-stage`` command line the stage command would refuse.
        """
        args = list(self.arguments or [])
        if not args or args[0] != COMMAND:
            return None
        return StageRequest.from_argv(args)

    def execute(self, context: Any) -> Any:
        """Run the stage on the backend chosen for this task, unless it can reuse a completed attempt:
        then it is recorded ``cached`` here and no pod (or stage command) starts. A DAG run the drift
        asset started reuses nothing."""
        chosen = self._backend = backend()
        self.log.info("nbops backend: %s", chosen)
        if not asset_triggered(context) and self.reused_here(chosen):
            return None
        if chosen == "local":
            return self.execute_local()
        self._require_settings()
        try:
            return super().execute(context)
        except ConfigException as exc:
            raise AirflowFailException(f"no Kubernetes cluster configured for stage pods ({exc}). {RUN_HERE}") from exc

    def command_line(self) -> list[str]:
        """The rendered command line of the pod, ``nbops`` resolved on this machine."""
        return [_nbops_executable(), *self.arguments]

    def rendered_env(self) -> dict[str, str]:
        """The pod's rendered environment variables as a mapping."""
        env = self.env_vars or []
        if isinstance(env, dict):
            return {str(k): str(v) for k, v in env.items()}
        return {e.name: e.value or "" for e in env}

    def reused_here(self, chosen: str) -> bool:
        """For a stage task, look for a completed attempt with the stage's key from this worker and,
        when there is one, record the stage as ``cached`` (DESIGN §13). Where the worker cannot see
        the artifact store (a cluster's volume), or lacks nbops's runner extra, the pod decides
        the same way before running its notebook."""
        try:
            request = self.stage_request()
        except ValueError as exc:  # the stage command refuses it, and says why
            self.log.info("not reused here (%s); the stage command decides", exc)
            return False
        if request is None or request.force:
            return False
        pod_env = self.rendered_env()
        root = pod_env.get(ENV_ARTIFACT_ROOT, "")
        if not (root.startswith("s3://") or Path(root).is_dir()):
            return False
        try:
            from nbops.plugins import complete_reuse, probe_reuse
            from nbops.status import StageStatus
        except ImportError:  # an Airflow worker without the runner extra
            return False
        # The pod's own HOME does not exist here; its image is what a pod's key names.
        env = {k: v for k, v in pod_env.items() if k != "HOME" and (chosen != "local" or k not in POD_ONLY_ENV)}
        try:
            with overridden(env):
                found = probe_reuse(request)
                if found is None:
                    return False
                result = complete_reuse(found)
        except Exception as exc:  # the stage command meets the same problem and reports it
            self.log.info("not reused here (%s: %s); the stage command decides", type(exc).__name__, exc)
            return False
        if result.status is not StageStatus.CACHED:
            self.log.info("not reused here (%s); the stage command runs", result.message)
            return False
        self.log.info("stage %s: %s; no pod started, no notebook ran", request.stage, result.message)
        return True

    def execute_local(self) -> Any:
        """Run the pod's command line here; map its exit code to skip (``skip_on_exit_code``, as
        the pod operator does), retry or fail. With ``do_xcom_push`` the command's last line of
        output that is a JSON list is the task's result, as the pod's ``return.json`` would be."""
        env = {**os.environ, **{k: v for k, v in self.rendered_env().items() if k not in POD_ONLY_ENV}}
        command = self.command_line()
        self.log.info("running: %s", " ".join(command))
        self._proc = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        result = None
        try:
            assert self._proc.stdout is not None  # noqa: S101 - set by stdout=PIPE
            for line in self._proc.stdout:
                self.log.info("%s", line.rstrip("\n"))
                if self.do_xcom_push and line.startswith("["):
                    result = line
            code = self._proc.wait()
        finally:
            self._terminate()
        if code == 0:
            return json.loads(result) if result is not None else None
        if code in (self.skip_on_exit_code or ()):
            raise AirflowSkipException(f"command exited {code}: skipped (skip_on_exit_code)")
        message = f"stage command exited {code}; see the log above and the stage's MLflow run"
        if not ExitCode.of(code).retryable:
            raise AirflowFailException(f"{message} (not retried: exit {code} is not an infrastructure failure)")
        raise AirflowException(message)

    def on_kill(self) -> None:
        """Stop the stage command (it archives and records its partial notebook on SIGTERM)."""
        self._terminate()
        if self._backend != "local":
            super().on_kill()

    def cleanup(self, pod: Any, remote_pod: Any, xcom_result: Any = None, context: Any = None) -> None:
        """Say which image the pod ran (:meth:`note_image_digest`), delete a pod that is still
        running (the task timed out or failed around it), and fail without retries when the pod's
        command exited 1 or 2 (DESIGN §6); a skip stays a skip."""
        self.note_image_digest(remote_pod, context)
        phase = getattr(getattr(remote_pod, "status", None), "phase", None)
        if remote_pod is not None and phase in ("Running", "Pending"):
            self.log.warning("pod %s is still %s: deleting it", remote_pod.metadata.name, phase)
            self.pod_manager.delete_pod(remote_pod)
        try:
            super().cleanup(pod, remote_pod, xcom_result=xcom_result, context=context)
        except AirflowSkipException:
            raise
        except AirflowException as exc:
            code = _exit_code(remote_pod, self.base_container_name)
            if code is not None and not ExitCode.of(code).retryable:
                raise AirflowFailException(f"{exc} (stage command exited {code}; not retried)") from exc
            raise

    def note_image_digest(self, remote_pod: Any, context: Any) -> str | None:
        """Log the image id the kubelet reports for the pod's container and push it as the XCom
        ``image_digest``; None (nothing said) while the container has not started. Whatever
        happens here leaves the task's outcome to the pod."""
        digest = image_digest(remote_pod, self.base_container_name)
        if digest is None:
            return None
        name = getattr(getattr(remote_pod, "metadata", None), "name", None)
        self.log.info("pod %s ran image %s", name, digest)
        ti = context.get("ti") if hasattr(context, "get") else None
        if ti is not None:
            try:
                ti.xcom_push(key=XCOM_IMAGE_DIGEST, value=digest)
            except Exception as exc:  # the digest is in the log line above all the same
                self.log.warning("image digest not pushed to XCom: %s: %s", type(exc).__name__, exc)
        return digest

    def _require_settings(self) -> None:
        env = self.rendered_env()
        unset = [name for name in (ENV_TRACKING_URI, ENV_ARTIFACT_ROOT) if not env.get(name)]
        if unset:
            raise AirflowFailException(
                f"{' and '.join(unset)} not configured for stage pods: set them in the Airflow workers' environment "
                f"or as Airflow Variables {', '.join(u.lower() for u in unset)} (see deploy/README.md). "
                f"{RUN_HERE}"
            )

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop([proc])


def asset_triggered(context: Any) -> bool:
    """Whether the task runs in a DAG run an asset event started (the drift asset, for a training DAG)."""
    dag_run = context.get("dag_run") if hasattr(context, "get") else None
    return getattr(dag_run, "run_type", None) == ASSET_TRIGGERED


def _nbops_executable() -> str:
    beside = Path(sys.executable).with_name("nbops")
    if beside.exists():
        return str(beside)
    found = shutil.which("nbops")
    if found is None:
        raise AirflowFailException("the `nbops` command is not installed beside this Python or on PATH.")
    return found


def image_digest(remote_pod: Any, container: str) -> str | None:
    """The image id of ``container`` in the pod's status (``repo@sha256:...``), or None before
    the kubelet reports one."""
    statuses = getattr(getattr(remote_pod, "status", None), "container_statuses", None) or []
    for status in statuses:
        image_id = getattr(status, "image_id", None)
        if getattr(status, "name", None) == container and image_id:
            return str(image_id)
    return None


def _exit_code(remote_pod: Any, container: str) -> int | None:
    statuses = getattr(getattr(remote_pod, "status", None), "container_statuses", None) or []
    for status in statuses:
        terminated = getattr(getattr(status, "state", None), "terminated", None)
        if status.name == container and terminated is not None:
            return int(terminated.exit_code)
    return None
