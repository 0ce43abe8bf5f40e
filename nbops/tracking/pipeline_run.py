"""The pipeline run's MLflow parent run: create, find, close (DESIGN §8).

Every backend converges on the same parent: the local runner creates it before the first
stage; a stage command started alone (a pod) creates it if no one has, so whichever
process comes first wins and concurrent creators agree on the oldest.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from nbops.status import PipelineOutcome
from nbops.tracking import query, record, tags
from nbops.tracking.store import SQLITE_BUSY_TIMEOUT_S, sqlite_path

if TYPE_CHECKING:
    from mlflow import MlflowClient

KIND = "pipeline"
SETTLE_S = 0.5
"""How long a tracking-server creator waits before it trusts that it created the oldest parent."""


def find(client: MlflowClient, experiment_id: str, run_id: str) -> str | None:
    """MLflow run id of the parent run of pipeline run ``run_id``.

    If concurrent creators left several, every reader picks the same one: the oldest, ties
    broken by run id (runs created in the same millisecond are common on a busy machine).
    """
    runs = query.pipeline_runs(client, experiment_id, run_id, KIND)
    if not runs:
        return None
    return str(min(runs, key=lambda r: (r.info.start_time, r.info.run_id)).info.run_id)


def get_or_create(
    client: MlflowClient, experiment_id: str, pipeline: str, run_id: str, extra_tags: Mapping[str, str]
) -> str:
    """The single parent run of pipeline run ``run_id``.

    On an embedded SQLite store, creators on this machine take turns under a file lock, so
    there is exactly one. On a tracking server, concurrent creators converge: after creating,
    the oldest matching run wins and a loser deletes its own duplicate; a winner looks again
    after :data:`SETTLE_S` for an older run whose commit was still on its way.
    """
    db = sqlite_path(client.tracking_uri)
    if db is None:
        return _get_or_create(client, experiment_id, pipeline, run_id, extra_tags, settle=SETTLE_S)
    from filelock import FileLock

    with FileLock(str(db) + ".parent.lock", timeout=SQLITE_BUSY_TIMEOUT_S):
        return _get_or_create(client, experiment_id, pipeline, run_id, extra_tags, settle=0.0)


def _get_or_create(
    client: MlflowClient,
    experiment_id: str,
    pipeline: str,
    run_id: str,
    extra_tags: Mapping[str, str],
    settle: float,
) -> str:
    existing = find(client, experiment_id, run_id)
    if existing:
        return existing
    all_tags = {tags.PIPELINE: pipeline, tags.RUN_ID: run_id, tags.KIND: KIND, **extra_tags}
    created = record.call(
        client.create_run, experiment_id, tags=all_tags, run_name=run_id, what="create the pipeline run"
    )
    mine = str(created.info.run_id)
    winner = find(client, experiment_id, run_id) or mine
    if winner == mine and settle:
        time.sleep(settle)
        winner = find(client, experiment_id, run_id) or mine
    if winner != mine:
        record.call(client.delete_run, mine, what="drop a duplicate pipeline run")
    return winner


def close(client: MlflowClient, parent_id: str, outcome: PipelineOutcome) -> None:
    """Tag the run's outcome and end it with the matching MLflow status; both backends close here."""
    record.set_tags(client, parent_id, {tags.STATUS: outcome.value})
    record.finish_run(client, parent_id, outcome.mlflow_status)
