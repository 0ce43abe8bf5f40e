"""What a stage attempt writes about itself: its MLflow tags, its manifest (DESIGN §8) and the
description of the model versions it registered.

Pure functions of the phase records (:mod:`nbops.stage.phases`), so the lifecycle reads as
its phases and the vocabulary of the record stays beside :mod:`nbops.tracking.tags`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from nbops import __version__, environment
from nbops.context import ENV_AIRFLOW, ENV_IMAGE, ENV_TRIGGER
from nbops.status import StageStatus
from nbops.storage import layout
from nbops.storage.manifest import CarriedFile, Manifest, NotebookRef, PointRef, SealedModel, build_manifest
from nbops.storage.start import AttemptStart, StartParameter, origins
from nbops.tracking import record, tags
from nbops.tracking.who import who_tags

if TYPE_CHECKING:
    from nbops.notebook.outcome import Outcome
    from nbops.stage.phases import Claimed, Located, Prepared
    from nbops.storage.manifest import ManifestInput


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
        tags.RUN_DATE: prepared.run_date,  # one date per pipeline run (DAG runs: the logical date's)
        **_code(prepared),
        **airflow_tags(),
        **who_tags(),
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
        tags.ATTEMPT_PATH: layout.attempt_rel(prepared.pipeline.name, run_id, prepared.unit, attempt),
        **point_tags(prepared),
        tags.RUN_ID: run_id,
        tags.RUN_DATE: prepared.run_date,
        tags.PIPELINE: prepared.pipeline.name,
        tags.VERSION: __version__,
        **_code(prepared),
        **airflow_tags(),
        **who_tags(),
    }


def point_tags(prepared: Prepared) -> dict[str, str]:
    """Of a swept stage's attempt: its point's index, id and label (its parameters are its params)."""
    point = prepared.point
    if point is None:
        return {}
    return {
        tags.POINT: str(point.index),
        tags.POINT_ID: point.id,
        tags.POINT_LABEL: point.label(prepared.stage.name)[: tags.ERROR_MESSAGE_LIMIT],
        tags.POINT_PARAMETERS: json.dumps(dict(point.parameters), sort_keys=True, default=str)[
            : tags.ERROR_MESSAGE_LIMIT * 8
        ],
    }


def outcome_tags(claimed: Claimed, outcome: Outcome, message: str) -> dict[str, str]:
    """Tags saying how the attempt ended: status, reuse, key, and for a failure the cell and error."""
    run_tags = {tags.STATUS: outcome.status.value}
    hit, key = claimed.hit, claimed.located.cache_key
    if hit is not None:
        run_tags[tags.REUSED_RUN] = hit.run_id
        run_tags[tags.REUSED_ATTEMPT] = layout.attempt_rel(
            claimed.prepared.pipeline.name, hit.run_id, claimed.prepared.unit, hit.manifest.attempt
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


# -- the description of a model version the attempt registered -------------------------------

PARAMETER_SHOWN = 120
"""Longest parameter value a description shows whole; the stage run has every value."""
_ESCAPED = str.maketrans({**{c: "\\" + c for c in "\\`*_[]<>|"}, "\n": " ", "\r": " "})


@dataclass(frozen=True)
class RunLinks:
    """Where an attempt's record is in the MLflow UI, as relative hash routes (``#/...``) that work
    behind whatever host serves the UI."""

    experiment_id: str
    parent_run_id: str
    stage_run_id: str

    def run(self, run_id: str) -> str:
        """The page of a run of the experiment."""
        return f"#/experiments/{self.experiment_id}/runs/{run_id}"

    def artifact(self, path: str) -> str:
        """An artifact of the stage run, open in the run's artifact view."""
        return f"{self.run(self.stage_run_id)}/artifacts/{path}"


def version_description(
    run_tags: Mapping[str, str], parameters: Mapping[str, Any], consumed: Sequence[ManifestInput], links: RunLinks
) -> str:
    """The Markdown description of a model version the attempt registered: its lineage, so that the
    executed notebook is one click from the version (the MLflow UI renders the Markdown).

    ``run_tags`` are the stage run's tags as the attempt set them (:func:`stage_tags` with the
    stage and attempt), ``parameters`` what the notebook ran with (secrets masked), ``consumed``
    the upstream attempts with their manifests' sha256. Parameters that would take the text past
    MLflow's limit are left out and counted; the stage run lists them all.
    """
    head, tail = _lineage(run_tags, links), _consumed(consumed)
    room = record.DESCRIPTION_LIMIT - sum(len(line) + 1 for line in (*head, *tail))
    text = "\n".join([*head, *_parameters(parameters, room, links), *tail])
    return text[: record.DESCRIPTION_LIMIT]


def _text(value: str) -> str:
    """Plain text in Markdown: no emphasis, link, HTML or table cell boundary of its own."""
    return value.translate(_ESCAPED)


def _literal(value: str) -> str:
    """A value shown as code, unless a backtick or bar in it would break the span or the table."""
    return f"`{value}`" if value and not set(value) & set("`|\n\r") else _text(value)


def _lineage(run_tags: Mapping[str, str], links: RunLinks) -> list[str]:
    def tag(key: str) -> str:
        return run_tags.get(key, "")

    stage_run = links.run(links.stage_run_id)
    dirty = ", **dirty** (the code differed from it)" if tag(tags.GIT_DIRTY) == tags.flag(True) else ""
    by = f"{_literal(tag(tags.USER))} on {_literal(tag(tags.HOST))}"
    if tag(tags.TRIGGERED_BY):
        by += f", triggered by {_literal(tag(tags.TRIGGERED_BY))}"
    where = f"image {_literal(tag(tags.IMAGE))}" if tag(tags.IMAGE) else _literal(tag(tags.ENVIRONMENT))
    lines = [
        f"- **Pipeline:** {_literal(tag(tags.PIPELINE))}, nbops run "
        f"[{_literal(tag(tags.RUN_ID))}]({links.run(links.parent_run_id)}) (the pipeline run)",
        f"- **Stage:** {_literal(tag(tags.STAGE))}, attempt {_text(tag(tags.ATTEMPT))}: "
        f"[executed notebook]({links.artifact('output.html')}) · [stage run]({stage_run})",
        f"- **Notebook:** {_literal(tag(tags.NOTEBOOK_PATH))}, sha256 {_literal(tag(tags.NOTEBOOK_SHA256))}",
        f"- **Git commit:** {_literal(tag(tags.GIT_COMMIT))}{dirty}",
        *([f"- **Lock sha256:** {_literal(tag(tags.LOCK_SHA256))}"] if tag(tags.LOCK_SHA256) else []),
        f"- **Environment:** {where}, packages sha256 {_literal(tag(tags.PACKAGES_SHA256))}",
        f"- **Run by:** {by}",
    ]
    return ["### Lineage", "", *lines, ""]


def _parameters(parameters: Mapping[str, Any], room: int, links: RunLinks) -> list[str]:
    if not parameters:
        return ["**Parameters:** none", ""]
    lines = ["**Parameters**", "", "| Name | Value |", "| --- | --- |"]
    more = f"... and {{}} more: see the [stage run]({links.run(links.stage_run_id)})."
    used = sum(len(line) + 1 for line in lines) + len(more) + 8
    for name, value in parameters.items():
        shown = record.param_text(value)
        if len(shown) > PARAMETER_SHOWN:
            shown = shown[: PARAMETER_SHOWN - 3] + "..."
        row = f"| {_text(name)} | {_text(shown)} |"
        if used + len(row) + 1 > room:
            break
        lines.append(row)
        used += len(row) + 1
    left = len(parameters) - (len(lines) - 4)
    return [*lines, *(["", more.format(left)] if left else []), ""]


def _consumed(consumed: Sequence[ManifestInput]) -> list[str]:
    if not consumed:
        return ["**Upstream attempts consumed:** none"]
    rows = [f"| {_text(c.stage)} | {c.attempt} | {_literal(c.manifest_sha256)} |" for c in consumed]
    header = "**Upstream attempts consumed** (the sha256 of an attempt's manifest digests its outputs)"
    return [header, "", "| Stage | Attempt | Manifest sha256 |", "| --- | --- | --- |", *rows]


def manifest(claimed: Claimed, outcome: Outcome, mlflow_run_id: str, models: tuple[SealedModel, ...] = ()) -> Manifest:
    """The manifest of a successful attempt: its files with sha256, what it ran with and consumed,
    the helper files it carried and the model versions it registered (``models``, sealed)."""
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
        models=models,
        carried=tuple(CarriedFile(path=f.path, sha256=f.sha256) for f in prepared.carried),
        point=PointRef(**prepared.point.to_json()) if prepared.point is not None else None,
    )


def start(located: Located, number: int, reuses: str | None = None) -> AttemptStart:
    """The start record of attempt ``number`` (``attempt.json``): what it runs with and where each
    parameter's value came from (DESIGN §18)."""
    prepared = located.prepared
    stage, env = prepared.stage, environment.current()
    point = dict(prepared.point.parameters) if prepared.point is not None else None
    came = origins(list(prepared.effective), dict(stage.parameters), dict(prepared.request.params), point)
    return AttemptStart(
        pipeline=prepared.pipeline.name,
        run_id=prepared.request.run_id,
        stage=stage.name,
        attempt=number,
        point=PointRef(**prepared.point.to_json()) if prepared.point is not None else None,
        notebook=NotebookRef(path=stage.notebook, sha256=prepared.contract.notebook.sha256),
        parameters={k: StartParameter(value=v, origin=came[k]) for k, v in prepared.effective.items()},
        inputs=located.consumed,
        carried=tuple(CarriedFile(path=f.path, sha256=f.sha256) for f in prepared.carried),
        git_commit=prepared.git.commit,
        git_dirty=prepared.git.dirty,
        image=image(),
        environment=env.description,
        packages=env.packages,
        started_at=datetime.now(UTC).isoformat(),
        reuses=reuses,
    )
