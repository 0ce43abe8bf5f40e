"""Every read of the tracking store, in one module: runs, stage runs, experiments, model
versions and aliases. Writes stay in :mod:`nbops.tracking.record`; every call goes through
:func:`nbops.tracking.record.call`, so a store that cannot be read is an ``InfraError``
naming what was being read."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from nbops.status import StageStatus
from nbops.tracking import record, tags

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Experiment, Run
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

CHAMPION = "champion"
CHALLENGER = "challenger"
_ABSENT = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


def run(client: MlflowClient, run_id: str, what: str = "read the run") -> Run:
    """One run by its MLflow id."""
    return record.call(client.get_run, run_id, what=what)


def run_tags(client: MlflowClient, run_id: str, what: str = "read the pipeline run") -> dict[str, str]:
    """The tags of one run."""
    return dict(run(client, run_id, what).data.tags)


def experiment_id(client: MlflowClient, name: str) -> str | None:
    """The id of the experiment named ``name`` (a pipeline's), or None when it has no runs yet."""
    found = record.call(client.get_experiment_by_name, name, what=f"read experiment '{name}'")
    return None if found is None else str(found.experiment_id)


def stage_runs(client: MlflowClient, experiment: str, parent_run_id: str) -> list[Run]:
    """Every stage run (attempt) of one pipeline run."""
    return list(
        record.call(
            client.search_runs,
            [experiment],
            filter_string=f"tags.`{tags.PARENT_RUN}` = '{parent_run_id}'",
            max_results=5000,
            what="list the stage runs",
        )
    )


def stage_run(
    client: MlflowClient, experiment: str, run_id: str, stage: str, status: StageStatus = StageStatus.SUCCEEDED
) -> Run | None:
    """The last attempt's stage run of ``stage`` in pipeline run ``run_id`` that ended ``status``."""
    runs = record.call(
        client.search_runs,
        [experiment],
        filter_string=(
            f"tags.`{tags.RUN_ID}` = '{run_id}' and tags.`{tags.STAGE}` = '{stage}' "
            f"and tags.`{tags.STATUS}` = '{status.value}'"
        ),
        max_results=100,
        what=f"find the stage run of '{stage}'",
    )
    if not runs:
        return None
    return max(runs, key=lambda r: int(r.data.tags.get(tags.ATTEMPT) or 0))


def point_runs(client: MlflowClient, experiment: str, run_id: str, stage: str) -> list[Run]:
    """Of a swept ``stage`` in pipeline run ``run_id``: the last attempt's stage run of each point that
    succeeded or reused one, in point order; ``[]`` when the stage is not swept."""
    done = (StageStatus.SUCCEEDED.value, StageStatus.CACHED.value)
    return [r for r in point_attempts(client, experiment, run_id, stage) if r.data.tags.get(tags.STATUS) in done]


def point_attempts(client: MlflowClient, experiment: str, run_id: str, stage: str) -> list[Run]:
    """Of a swept ``stage`` in pipeline run ``run_id``: the last attempt's stage run of each point,
    however it ended, in point order."""
    runs = record.call(
        client.search_runs,
        [experiment],
        filter_string=f"tags.`{tags.RUN_ID}` = '{run_id}' and tags.`{tags.STAGE}` = '{stage}'",
        max_results=50000,
        what=f"find the points of stage '{stage}'",
    )
    last: dict[str, Run] = {}
    for found in sorted(runs, key=lambda r: int(r.data.tags.get(tags.ATTEMPT) or 0)):
        point = found.data.tags.get(tags.POINT_ID)
        if point:
            last[point] = found
    return sorted(last.values(), key=lambda r: int(r.data.tags.get(tags.POINT) or 0))


def reused_run(client: MlflowClient, cached: Run) -> Run | None:
    """The stage run of the attempt a ``cached`` stage run reused (None: recorded into another store)."""
    from mlflow.exceptions import MlflowException

    original = cached.data.tags.get(tags.REUSED_MLFLOW_RUN)
    if not original:
        return None
    try:
        return client.get_run(original)
    except MlflowException:
        return None


def metric(found: Run, name: str) -> float | None:
    """A metric's last value on a run; None when it was not logged (or is NaN)."""
    value = found.data.metrics.get(name)
    return None if value is None or math.isnan(value) else float(value)


def version(client: MlflowClient, model: str, number: str) -> ModelVersion:
    """One version of a registered model."""
    return record.call(client.get_model_version, model, number, what=f"read version {number} of '{model}'")


def versions(client: MlflowClient, model: str | None, stage_run_id: str | None = None) -> list[ModelVersion]:
    """The versions of ``model`` (None: of every model), only those registered by ``stage_run_id`` when given."""
    clauses = ([f"name = '{model}'"] if model is not None else []) + (
        [f"run_id = '{stage_run_id}'"] if stage_run_id else []
    )
    what = f"list the versions of '{model}'" if model is not None else "list the model versions"
    return list(record.call(client.search_model_versions, " and ".join(clauses), what=what))


def aliased(client: MlflowClient, model: str, alias: str) -> ModelVersion | None:
    """The version ``alias`` names, or None (no such alias, or no such model yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model, alias)
    except MlflowException as exc:
        if exc.error_code in _ABSENT:
            return None
        return record.call(client.get_model_version_by_alias, model, alias, what=f"read '{model}@{alias}'")


def champion_version(client: MlflowClient, model: str) -> ModelVersion | None:
    """The version the ``champion`` alias names, or None."""
    return aliased(client, model, CHAMPION)


def champion_run_id(client: MlflowClient, model: str) -> str | None:
    """The nbops pipeline run that trained the current champion (from the version's lineage
    tags, else its stage run's), or None when there is no champion."""
    champion = champion_version(client, model)
    if champion is None:
        return None
    run_id = dict(champion.tags).get(tags.RUN_ID)
    if run_id:
        return str(run_id)
    if not champion.run_id:
        return None
    found = run_tags(client, champion.run_id, "read the champion's stage run").get(tags.RUN_ID)
    return str(found) if found else None


def experiment(client: MlflowClient, name: str) -> Experiment | None:
    """The experiment named ``name``, or None."""
    return record.call(client.get_experiment_by_name, name, what=f"read experiment '{name}'")


def pipeline_runs(client: MlflowClient, experiment: str, run_id: str, kind: str) -> list[Run]:
    """The parent runs recorded for nbops run ``run_id`` (several when concurrent creators raced), oldest first."""
    return list(
        record.call(
            client.search_runs,
            [experiment],
            filter_string=f"tags.`{tags.RUN_ID}` = '{run_id}' and tags.`{tags.KIND}` = '{kind}'",
            order_by=["attributes.start_time ASC"],
            max_results=50,
            what="search for the pipeline run",
        )
    )


def run_versions(client: MlflowClient, stage_run_id: str) -> list[ModelVersion]:
    """Every model version registered from one run, whatever its model."""
    return list(
        record.call(client.search_model_versions, f"run_id = '{stage_run_id}'", what="find the registered versions")
    )


def registered_model(client: MlflowClient, name: str) -> RegisteredModel | None:
    """The registered model ``name``, or None when the registry has none of that name."""
    from nbops.errors import InfraError

    try:
        return record.call(client.get_registered_model, name, what=f"read registered model '{name}'")
    except InfraError as exc:
        if getattr(exc.__cause__, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def registered_models(client: MlflowClient) -> list[RegisteredModel]:
    """Every registered model."""
    return list(record.call(client.search_registered_models, what="list the registered models"))
