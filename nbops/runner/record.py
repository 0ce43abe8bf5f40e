"""The record of one ``nbops run``: its MLflow parent run, opened before the first stage is
released and closed with the run's outcome (:func:`nbops.tracking.pipeline_run.close`, as the
DAG's ``close_run`` task closes a DAG run's)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from nbops import provenance
from nbops.context import git_state
from nbops.errors import NbopsError
from nbops.graph import MONITOR_STAGE
from nbops.spec import Pipeline
from nbops.stage.slots import RunInfo
from nbops.status import PipelineOutcome
from nbops.storage import Store
from nbops.tracking import pipeline_run, record, tags
from nbops.tracking.sqlite_client import record_client
from nbops.tracking.store import experiment_location, open_client
from nbops.tracking.who import who_tags

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass(frozen=True)
class RunRecord:
    """An open parent run: what the run slots are told about it."""

    client: MlflowClient
    info: RunInfo

    def close(self, outcome: PipelineOutcome) -> str | None:
        """Close the parent run; the error's text when the store refused."""
        try:
            pipeline_run.close(self.client, self.info.parent_run_id, outcome)
        except NbopsError as exc:
            return str(exc)
        return None


def open_record(
    pipeline: Pipeline,
    store: Store,
    info: RunInfo,
    params: dict[str, dict[str, object]],
    reused: list[str],
    warn: Callable[[str], None],
    monitor: bool = False,
) -> RunRecord:
    """Create (or, resuming, find) the parent run, archive the sources it uses, log the overrides.

    Raises:
        InfraError: the tracking or artifact store cannot be used.
    """
    location = experiment_location(info.tracking_uri, store.mlflow_location)
    client = record_client(info.tracking_uri, pipeline.name, location) or open_client(info.tracking_uri)
    experiment = record.ensure_experiment(client, pipeline.name, location)
    git = git_state(pipeline.root)
    parent = pipeline_run.get_or_create(
        client,
        experiment,
        pipeline.name,
        info.run_id,
        {
            tags.SPEC_SHA256: pipeline.sha256,
            tags.GIT_COMMIT: git.commit,
            tags.GIT_DIRTY: tags.flag(git.dirty),
            tags.TRIGGER: info.trigger,
            tags.RUN_DATE: info.run_date,
            **who_tags(),
        },
    )
    sources = provenance.publish_sources(store, pipeline, stages=[MONITOR_STAGE] if monitor else None)
    provenance.archive(client, parent, store, sources)
    for key in provenance.log_overrides(client, parent, params):
        warn(f"nbops run: -p {key}: the run's first invocation recorded another value; the stage run has this one")
    if reused:
        record.set_tags(client, parent, {tags.REUSED: " ".join(reused)})
    return RunRecord(client, replace(info, experiment_id=experiment, parent_run_id=parent))
