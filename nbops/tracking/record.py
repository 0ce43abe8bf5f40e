"""MLflow calls nbops makes, retried on SQLite lock contention and wrapped as InfraError; the
nested run of a stage attempt. The parent run has a module of its own (``pipeline_run``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from nbops.errors import InfraError
from nbops.retry import SQLITE_LOCK
from nbops.status import RunStatus
from nbops.tracking import tags

if TYPE_CHECKING:
    from mlflow import MlflowClient

T = TypeVar("T")

PARAM_VALUE_LIMIT = 6000
MODEL_TRAINING = "custom_model_development"
"""The value of ``mlflow.experimentKind`` that opens an experiment in MLflow's model-training view."""
DIGEST_LENGTH = 32
"""MLflow keeps at most 36 characters of a dataset digest: the first 32 hex digits of the sha256."""
UPSTREAM = "upstream"
DESCRIPTION_LIMIT = 5000
"""MLflow's SQL stores keep at most 5,000 characters of a model version's description."""
DESCRIPTION_SEPARATOR = "\n\n---\n\n"
"""Between a description the notebook gave a version and the lineage nbops adds below it."""


class Consumed(Protocol):
    """An upstream attempt a stage consumed (``nbops.storage.manifest.ManifestInput``)."""

    @property
    def stage(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def manifest_sha256(self) -> str: ...
    @property
    def location(self) -> str: ...


def entities_of(client: MlflowClient) -> Any:
    """The records ``client`` takes: ``mlflow.entities``, or the stand-ins of a client that
    writes MLflow's tables itself (:mod:`nbops.tracking.sqlite_client`), so that recording
    through it imports no MLflow."""
    own = getattr(client, "entities", None)
    if own is not None:
        return own
    import mlflow.entities

    return mlflow.entities


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
    """Experiment id of ``name``, creating it (with our artifact location) when missing; shown
    in the UI's model-training view."""
    found = call(client.get_experiment_by_name, name, what=f"read experiment '{name}'")
    if found is not None:
        if found.tags.get(tags.EXPERIMENT_KIND) != MODEL_TRAINING:
            call(client.set_experiment_tag, found.experiment_id, tags.EXPERIMENT_KIND, MODEL_TRAINING, what="tag it")
        return str(found.experiment_id)
    try:
        return str(
            client.create_experiment(
                name, artifact_location=artifact_location, tags={tags.EXPERIMENT_KIND: MODEL_TRAINING}
            )
        )
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
    point: int | None = None,
) -> str:
    """Create the nested run of one stage attempt (of a swept stage: of point ``point``)."""
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
        run_name=f"{stage}{f'[{point}]' if point is not None else ''} #{attempt}",
        what=f"create the run of stage '{stage}'",
    )
    return str(run.info.run_id)


def param_text(value: Any) -> str:
    """A parameter value as MLflow stores it: strings as they are, the rest as JSON; long values cut."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if len(text) > PARAM_VALUE_LIMIT:
        text = text[: PARAM_VALUE_LIMIT - 20] + "...[truncated]"
    return text


def log_parameters(client: MlflowClient, run_id: str, parameters: Mapping[str, Any]) -> None:
    """Log injected parameters as MLflow params (:func:`param_text`)."""
    params = [entities_of(client).Param(name, param_text(value)) for name, value in parameters.items()]
    if params:
        call(client.log_batch, run_id, params=params, what="log parameters")


def log_batch(client: MlflowClient, run_id: str, metrics: Mapping[str, float], tags: Mapping[str, str]) -> None:
    """Final metric values and tags in one call."""
    import time

    found = entities_of(client)
    now = int(time.time() * 1000)
    batch = [found.Metric(k, float(v), now, 0) for k, v in metrics.items()]
    labels = [found.RunTag(k, str(v)) for k, v in tags.items()]
    if batch or labels:
        call(client.log_batch, run_id, metrics=batch, tags=labels, what="log metrics and tags")


def set_tags(client: MlflowClient, run_id: str, tags: Mapping[str, str]) -> None:
    """Set several tags in one call."""
    if tags:
        call(
            client.log_batch,
            run_id,
            tags=[entities_of(client).RunTag(k, str(v)) for k, v in tags.items()],
            what="set tags",
        )


def log_files(client: MlflowClient, run_id: str, files: list[Path], artifact_path: str | None = None) -> None:
    """Upload files as run artifacts."""
    for path in files:
        call(client.log_artifact, run_id, str(path), artifact_path, what=f"upload {path.name}")


def finish_run(client: MlflowClient, run_id: str, status: str) -> None:
    """Terminate a run with ``FINISHED``, ``FAILED`` or ``KILLED``."""
    call(client.set_terminated, run_id, status, what="close the run")


ORPHANED = "ended without closing its record (the stage command died)"
"""Why a stage run found open after its command ended is closed ``KILLED``."""


def close_orphan(client: MlflowClient, run_id: str, why: str = ORPHANED) -> None:
    """Close a stage run whose command died without closing it: ``KILLED``, status ``killed``, ``why``."""
    set_tags(client, run_id, {tags.STATUS: "killed", tags.ERROR_MESSAGE: why[: tags.ERROR_MESSAGE_LIMIT]})
    finish_run(client, run_id, RunStatus.KILLED)


def close_predecessors(
    client: MlflowClient, experiment_id: str, parent_id: str, stage: str, attempt: int, point_id: str | None = None
) -> list[str]:
    """Attempt ``attempt`` of ``stage`` (of its point ``point_id`` when swept) has started: the earlier
    attempts of the stage (and point) in the same
    pipeline run whose records are still open ended without closing them (a pod or process killed
    mid-cell; a retry starts only once its predecessor has ended), so close them ``KILLED`` now
    rather than when the whole run closes. Returns the runs closed."""
    if attempt <= 1:
        return []
    from nbops.tracking import query

    closed = []
    for run in query.stage_runs(client, experiment_id, parent_id):
        same = run.data.tags.get(tags.STAGE) == stage and run.data.tags.get(tags.POINT_ID) == point_id
        earlier = same and int(run.data.tags.get(tags.ATTEMPT) or 0) < attempt
        if earlier and run.info.status == RunStatus.RUNNING:
            why = f"{ORPHANED}; closed when attempt {attempt} of '{stage}' started"
            close_orphan(client, run.info.run_id, why)
            closed.append(str(run.info.run_id))
    return closed


def log_upstream(client: MlflowClient, run_id: str, inputs: Sequence[Consumed]) -> None:
    """Each consumed upstream attempt as a dataset input of the run (the UI's Datasets panel).

    Name: the upstream stage; digest: its manifest's sha256, cut to MLflow's limit; profile:
    the full sha256 and the attempt; source: where the attempt lives.
    """
    if not inputs:
        return
    found = entities_of(client)
    datasets = []
    for consumed in inputs:
        profile = {"manifest_sha256": consumed.manifest_sha256, "stage": consumed.stage, "attempt": consumed.attempt}
        remote = "://" in consumed.location
        dataset = found.Dataset(
            name=consumed.stage,
            digest=consumed.manifest_sha256[:DIGEST_LENGTH],
            source_type=consumed.location.split("://", 1)[0] if remote else "local",
            source=json.dumps({"uri": consumed.location}),
            profile=json.dumps(profile, sort_keys=True),
        )
        datasets.append(found.DatasetInput(dataset, tags=[found.InputTag(tags.DATASET_CONTEXT, UPSTREAM)]))
    call(client.log_inputs, run_id, datasets=datasets, what="log the upstream attempts as dataset inputs")


def tag_model_versions(
    client: MlflowClient,
    run_id: str,
    version_tags: Mapping[str, str],
    description: Callable[[], str] | None = None,
) -> list[str]:
    """Tag every model version registered from run ``run_id`` so it points back to what made it,
    and describe it with ``description()`` (Markdown; asked for only when the run registered a
    version) below any description the notebook gave it; returns the versions as ``name/version``."""
    if not version_tags:
        return []
    from nbops.tracking import query

    versions = query.run_versions(client, run_id)
    lineage = description()[:DESCRIPTION_LIMIT] if versions and description is not None else ""
    done = []
    for version in versions:
        for key, value in version_tags.items():
            call(client.set_model_version_tag, version.name, version.version, key, value, what="tag a model version")
        text = described(version.description, lineage)
        if text != (version.description or ""):
            call(
                client.update_model_version,
                version.name,
                version.version,
                description=text,
                what="describe a model version",
            )
        done.append(f"{version.name}/{version.version}")
    return done


def described(current: str | None, lineage: str) -> str:
    """A version's description with ``lineage`` below what the notebook wrote (cut to fit
    :data:`DESCRIPTION_LIMIT`); unchanged when it has the lineage already, so a retried record
    writes the same text."""
    current = current or ""
    if not lineage or lineage in current:
        return current
    if not current:
        return lineage
    room = DESCRIPTION_LIMIT - len(lineage) - len(DESCRIPTION_SEPARATOR)
    return current[:room] + DESCRIPTION_SEPARATOR + lineage if room > 0 else lineage
