"""Runs in MLflow: one parent run per pipeline run, one nested run per stage attempt."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from nbops.errors import InfraError

if TYPE_CHECKING:
    from mlflow import MlflowClient

T = TypeVar("T")

TAG_PIPELINE = "nbops.pipeline"
TAG_RUN_ID = "nbops.run_id"
TAG_KIND = "nbops.kind"
TAG_STAGE = "nbops.stage"
TAG_ATTEMPT = "nbops.attempt"
PARENT_TAG = "mlflow.parentRunId"
PARAM_VALUE_LIMIT = 6000


def _is_transient(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text or "busy" in text


_retry = retry(
    retry=retry_if_exception(_is_transient),
    wait=wait_exponential(multiplier=0.2, max=5),
    stop=stop_after_attempt(10),
    reraise=True,
)


def call(fn: Callable[..., T], *args: Any, what: str, **kwargs: Any) -> T:
    """Call an MLflow client method, retrying lock contention; wrap other failures as InfraError."""
    try:
        return _retry(fn)(*args, **kwargs)
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


def find_parent_run(client: MlflowClient, experiment_id: str, run_id: str) -> str | None:
    """MLflow run id of the parent run of pipeline run ``run_id``, oldest first if several."""
    runs = call(
        client.search_runs,
        [experiment_id],
        filter_string=f"tags.`{TAG_RUN_ID}` = '{run_id}' and tags.`{TAG_KIND}` = 'pipeline'",
        order_by=["attributes.start_time ASC"],
        max_results=10,
        what="search for the pipeline run",
    )
    return str(runs[0].info.run_id) if runs else None


def get_or_create_parent_run(
    client: MlflowClient, experiment_id: str, pipeline: str, run_id: str, tags: Mapping[str, str]
) -> str:
    """The single parent run of pipeline run ``run_id``.

    Concurrent creators converge: after creating, the oldest matching run wins and a
    loser deletes its own duplicate.
    """
    existing = find_parent_run(client, experiment_id, run_id)
    if existing:
        return existing
    all_tags = {TAG_PIPELINE: pipeline, TAG_RUN_ID: run_id, TAG_KIND: "pipeline", **tags}
    created = call(
        client.create_run, experiment_id, tags=all_tags, run_name=f"{pipeline} {run_id}", what="create the pipeline run"
    )
    mine = str(created.info.run_id)
    winner = find_parent_run(client, experiment_id, run_id) or mine
    if winner != mine:
        call(client.delete_run, mine, what="drop a duplicate pipeline run")
    return winner


def start_stage_run(
    client: MlflowClient,
    experiment_id: str,
    parent_id: str,
    *,
    stage: str,
    attempt: int,
    tags: Mapping[str, str],
) -> str:
    """Create the nested run of one stage attempt."""
    run = call(
        client.create_run,
        experiment_id,
        tags={PARENT_TAG: parent_id, TAG_KIND: "stage", TAG_STAGE: stage, TAG_ATTEMPT: str(attempt), **tags},
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
