"""What a stage attempt writes about itself: its MLflow tags and its manifest (DESIGN §8).

Pure functions of the phase records (:mod:`nbops.stage.phases`), so the lifecycle reads as
its phases and the vocabulary of the record stays beside :mod:`nbops.tracking.tags`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from nbops import __version__, environment
from nbops.context import ENV_AIRFLOW, ENV_IMAGE, ENV_TRIGGER
from nbops.status import StageStatus
from nbops.storage import layout
from nbops.storage.manifest import Manifest, NotebookRef, build_manifest
from nbops.tracking import tags

if TYPE_CHECKING:
    from nbops.notebook.outcome import Outcome
    from nbops.stage.phases import Claimed, Prepared


def image() -> str | None:
    """The container image the stage runs in (named in pods), else None: a local run records
    its Python environment instead (:mod:`nbops.environment`)."""
    return os.environ.get(ENV_IMAGE, "").strip() or None


def airflow_tags() -> dict[str, str]:
    """The Airflow DAG run and try the stage runs in, when it runs under Airflow."""
    names = {"dag_id": tags.AIRFLOW_DAG_ID, "run_id": tags.AIRFLOW_RUN_ID, "try_number": tags.AIRFLOW_TRY_NUMBER}
    return {tag: os.environ[ENV_AIRFLOW[key]] for key, tag in names.items() if os.environ.get(ENV_AIRFLOW[key])}


def _code(prepared: Prepared) -> dict[str, str]:
    promoted = prepared.request.promoted
    code = {tags.GIT_COMMIT: prepared.git.commit, tags.GIT_DIRTY: tags.flag(prepared.git.dirty)}
    return {**code, **({tags.LOCK_SHA256: promoted} if promoted else {})}


def parent_tags(prepared: Prepared) -> dict[str, str]:
    """Tags of the pipeline run's parent record, should this attempt be the one that creates it."""
    return {
        tags.SPEC_SHA256: prepared.pipeline.sha256,
        tags.TRIGGER: os.environ.get(ENV_TRIGGER, "exec-stage"),
        **_code(prepared),
        **airflow_tags(),
    }


def stage_tags(prepared: Prepared, attempt: int) -> dict[str, str]:
    """Tags of the attempt's MLflow run, set when it is created."""
    stage, run_id, env = prepared.stage, prepared.request.run_id, environment.current()
    return {
        tags.NOTEBOOK_PATH: stage.notebook,
        tags.NOTEBOOK_SHA256: prepared.contract.notebook.sha256,
        tags.ENVIRONMENT: env.description,
        tags.PACKAGES_SHA256: env.packages_sha256,
        **({tags.IMAGE: named} if (named := image()) else {}),
        tags.ATTEMPT_PATH: layout.attempt_rel(prepared.pipeline.name, run_id, stage.name, attempt),
        tags.RUN_ID: run_id,
        tags.RUN_DATE: prepared.run_date,
        tags.PIPELINE: prepared.pipeline.name,
        tags.VERSION: __version__,
        **_code(prepared),
        **airflow_tags(),
    }


def outcome_tags(claimed: Claimed, outcome: Outcome, message: str) -> dict[str, str]:
    """Tags saying how the attempt ended: status, reuse, key, and for a failure the cell and error."""
    run_tags = {tags.STATUS: outcome.status.value}
    hit, key = claimed.hit, claimed.located.cache_key
    if hit is not None:
        run_tags[tags.REUSED_RUN] = hit.run_id
        run_tags[tags.REUSED_ATTEMPT] = layout.attempt_rel(
            claimed.prepared.pipeline.name, hit.run_id, claimed.prepared.stage.name, hit.manifest.attempt
        )
        run_tags[tags.REUSED_MLFLOW_RUN] = hit.manifest.mlflow_run_id
    if key:
        run_tags[tags.CACHE_KEY] = key
    if not outcome.status.succeeded:
        run_tags[tags.FAILED_CELL] = str(outcome.cell_index)
        run_tags[tags.ERROR] = outcome.ename
        run_tags[tags.ERROR_MESSAGE] = message[: tags.ERROR_MESSAGE_LIMIT]
        if outcome.execution_count is not None:
            run_tags[tags.FAILED_EXECUTION_COUNT] = str(outcome.execution_count)
        if outcome.limit is not None:
            run_tags[tags.TIMEOUT_LIMIT] = f"{outcome.limit:g}"
        if outcome.status is StageStatus.KILLED and outcome.evalue:
            run_tags[tags.SIGNAL] = outcome.evalue
    return run_tags


def version_tags(claimed: Claimed, mlflow_run_id: str) -> dict[str, str]:
    """What a model version registered by this attempt is tagged with (DESIGN §8)."""
    prepared = claimed.prepared
    values = {
        tags.PIPELINE: prepared.pipeline.name,
        tags.RUN_ID: prepared.request.run_id,
        tags.STAGE: prepared.stage.name,
        tags.STAGE_RUN: mlflow_run_id,
        tags.NOTEBOOK_SHA256: prepared.contract.notebook.sha256,
        tags.LOCK_SHA256: prepared.request.promoted or "",
        tags.GIT_COMMIT: prepared.git.commit,
        tags.GIT_DIRTY: tags.flag(prepared.git.dirty),
    }
    return {k: v for k, v in values.items() if v}


def manifest(claimed: Claimed, outcome: Outcome, mlflow_run_id: str) -> Manifest:
    """The manifest of a successful attempt: its files with sha256, what it ran with and consumed."""
    prepared, hit = claimed.prepared, claimed.hit
    stage, env = prepared.stage, environment.current()
    return build_manifest(
        claimed.attempt.workdir,
        pipeline=prepared.pipeline.name,
        run_id=prepared.request.run_id,
        stage=stage.name,
        attempt=claimed.attempt.number,
        status=outcome.status.value,
        notebook=NotebookRef(path=stage.notebook, sha256=prepared.contract.notebook.sha256),
        parameters=dict(prepared.effective),
        metrics=outcome.metrics,
        image=image(),
        environment=env.description,
        packages_sha256=env.packages_sha256,
        lock_sha256=prepared.request.promoted,
        git_commit=prepared.git.commit,
        git_dirty=prepared.git.dirty,
        mlflow_run_id=mlflow_run_id,
        finished_at=datetime.now(UTC).isoformat(),
        nbops_version=__version__,
        inputs=claimed.located.consumed,
        cache_key=claimed.located.cache_key,
        reused=hit.reused() if hit is not None else None,
    )
