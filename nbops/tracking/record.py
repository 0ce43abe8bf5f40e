"""MLflow calls nbops makes, retried on SQLite lock contention and wrapped as InfraError; the
nested run of a stage attempt. The parent run has a module of its own (``pipeline_run``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from nbops.errors import InfraError
from nbops.retry import SQLITE_LOCK
from nbops.tracking import tags

if TYPE_CHECKING:
    from mlflow import MlflowClient

T = TypeVar("T")

PARAM_VALUE_LIMIT = 6000


def _is_transient(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text or "busy" in text


def call(fn: Callable[..., T], *args: Any, what: str, **kwargs: Any) -> T:
    """Call an MLflow client method, retrying lock contention (``SQLITE_LOCK``); wrap other
    failures as InfraError."""
    try:
        return SQLITE_LOCK.call(lambda: fn(*args, **kwargs), retry_on=_is_transient)
    except InfraError:
        raise
    except Exception as exc:
        raise InfraError(f"MLflow: cannot {what}: {exc}") from exc


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """Experiment id of ``name``, creating it (with our artifact location) when missing."""
    found = call(client.get_experiment_by_name, name, what=f"read experiment '{name}'")
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifact_location))
    except Exception:
        # Another process created it between our read and our write.
        again = call(client.get_experiment_by_name, name, what=f"read experiment '{name}'")
        if again is None:
            raise InfraError(f"MLflow: cannot create experiment '{name}'.") from None
        return str(again.experiment_id)


def start_stage_run(
    client: MlflowClient,
    experiment_id: str,
    parent_id: str,
    *,
    stage: str,
    attempt: int,
    extra_tags: Mapping[str, str],
) -> str:
    """Create the nested run of one stage attempt."""
    run = call(
        client.create_run,
        experiment_id,
        tags={
            tags.PARENT_RUN: parent_id,
            tags.KIND: "stage",
            tags.STAGE: stage,
            tags.ATTEMPT: str(attempt),
            **extra_tags,
        },
        run_name=f"{stage} #{attempt}",
        what=f"create the run of stage '{stage}'",
    )
    return str(run.info.run_id)


def log_parameters(client: MlflowClient, run_id: str, parameters: Mapping[str, Any]) -> None:
    """Log injected parameters as MLflow params (JSON text, long values cut with a marker)."""
    from mlflow.entities import Param

    params = []
    for name, value in parameters.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        if len(text) > PARAM_VALUE_LIMIT:
            text = text[: PARAM_VALUE_LIMIT - 20] + "...[truncated]"
        params.append(Param(name, text))
    if params:
        call(client.log_batch, run_id, params=params, what="log parameters")


def log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, float]) -> None:
    """Log final metric values in one batch."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    if batch:
        call(client.log_batch, run_id, metrics=batch, what="log metrics")


def set_tags(client: MlflowClient, run_id: str, tags: Mapping[str, str]) -> None:
    """Set several tags in one call."""
    from mlflow.entities import RunTag

    if tags:
        call(client.log_batch, run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()], what="set tags")


def log_files(client: MlflowClient, run_id: str, files: list[Path], artifact_path: str | None = None) -> None:
    """Upload files as run artifacts."""
    for path in files:
        call(client.log_artifact, run_id, str(path), artifact_path, what=f"upload {path.name}")


def finish_run(client: MlflowClient, run_id: str, status: str) -> None:
    """Terminate a run with ``FINISHED``, ``FAILED`` or ``KILLED``."""
    call(client.set_terminated, run_id, status, what="close the run")
