"""Build the audit report from a walked and verified lineage: the pipeline run, one node per
stage attempt, and each parameter told apart as the notebook's default, the spec's value or an
override."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from nbops import rundate
from nbops.audit.lineage import AttemptRecord, Copy, Lineage, RunRecord, iso
from nbops.audit.report import (
    AirflowInfo,
    AuditReport,
    CarriedInfo,
    FailureInfo,
    InputInfo,
    NotebookInfo,
    Origin,
    OutputInfo,
    ParameterInfo,
    PipelineRunInfo,
    SealedModelInfo,
    SourceInfo,
    StageNode,
    Subject,
    WhoInfo,
)
from nbops.audit.verify import Check
from nbops.errors import InputError
from nbops.notebook.parameters import parse_parameters
from nbops.provenance import SourceFile
from nbops.tracking import tags
from nbops.tracking.record import param_text


def build_report(lineage: Lineage, checks: list[Check]) -> AuditReport:
    """The document of a walked and verified lineage."""
    subject = Subject(
        kind=lineage.subject,
        ref=lineage.ref,
        tracking_uri=lineage.tracking_uri,
        artifact_store=lineage.store_url,
        model=lineage.model,
    )
    stages = tuple(_node(lineage, a, checks) for a in lineage.attempts)
    return AuditReport(subject=subject, pipeline_run=_pipeline_run(lineage), stages=stages, checks=tuple(checks))


def _pipeline_run(lineage: Lineage) -> PipelineRunInfo | None:
    parent = lineage.parent
    if parent is None:
        return None
    sources = lineage.sources
    return PipelineRunInfo(
        mlflow_run_id=parent.run_id,
        experiment_id=parent.experiment_id,
        pipeline=parent.tag(tags.PIPELINE) or lineage.pipeline,
        run_id=parent.tag(tags.RUN_ID) or lineage.run_id,
        trigger=parent.tag(tags.TRIGGER),
        status=parent.tag(tags.STATUS) or parent.status.lower(),
        mlflow_status=parent.status,
        started_at=iso(parent.start_time),
        ended_at=iso(parent.end_time),
        spec=_source(lineage.spec, sources.spec if sources else None),
        lock=_source(lineage.lock, sources.lock if sources else None),
        spec_sha256=parent.tag(tags.SPEC_SHA256),
        lock_sha256=parent.tag(tags.LOCK_SHA256),
        git_commit=parent.tag(tags.GIT_COMMIT),
        git_dirty=_flag(parent.tag(tags.GIT_DIRTY)),
        airflow=_airflow(parent),
        overrides=dict(parent.params),
        reused=tuple(parent.tag(tags.REUSED).split()),
        who=_who(parent),
    )


def _who(run: RunRecord) -> WhoInfo:
    """Who ran ``run`` and where, as its tags record it."""
    return WhoInfo(
        user=run.tag(tags.USER),
        host=run.tag(tags.HOST),
        triggered_by=run.tag(tags.TRIGGERED_BY),
        approved_by=run.tag(tags.GATE_APPROVED_BY),
        image_digest=run.tag(tags.IMAGE_DIGEST),
    )


def _source(copy: Copy | None, listed: SourceFile | None) -> SourceInfo | None:
    if copy is None:
        return None
    return SourceInfo(
        path=listed.path if listed is not None else "",
        sha256=copy.recorded_sha256,
        store_path=copy.rel,
        location=copy.location,
        indexed=copy.indexed,
    )


def _airflow(run: RunRecord) -> AirflowInfo | None:
    if not run.tag(tags.AIRFLOW_DAG_ID) and not run.tag(tags.AIRFLOW_RUN_ID):
        return None
    conf_text = run.tag(tags.AIRFLOW_CONF)
    conf: Any = None
    if conf_text:
        try:
            conf = json.loads(conf_text)
        except ValueError:
            conf = conf_text
    return AirflowInfo(
        dag_id=run.tag(tags.AIRFLOW_DAG_ID),
        run_id=run.tag(tags.AIRFLOW_RUN_ID),
        logical_date=run.tag(tags.AIRFLOW_LOGICAL_DATE),
        conf=conf,
        try_number=run.tag(tags.AIRFLOW_TRY_NUMBER),
    )


def _tag(run: RunRecord | None, name: str) -> str:
    """A tag of the run, ``""`` when unset or without a run."""
    return run.tag(name) if run is not None else ""


def _flag(text: str) -> bool | None:
    return {"true": True, "false": False}.get(text.strip().lower())


def _node(lineage: Lineage, node: AttemptRecord, checks: list[Check]) -> StageNode:
    run, manifest = node.run, node.manifest
    dirty = manifest.git_dirty if manifest is not None else None
    parameters, notes = _parameters(lineage, node)
    notes.extend(_notes(node))
    return StageNode(
        key=node.key,
        stage=node.stage,
        attempt=node.attempt,
        role=node.role,
        status=node.status,
        ok=all(c.ok for c in checks if c.scope == node.key),
        mlflow_run_id=run.run_id if run is not None else (manifest.mlflow_run_id if manifest else ""),
        attempt_path=node.rel,
        location=node.location,
        notebook=_notebook(lineage, node),
        parameters=parameters,
        metrics=dict(manifest.metrics) if manifest is not None else dict(run.metrics if run else {}),
        inputs=tuple(
            InputInfo(stage=i.stage, attempt=i.attempt, manifest_sha256=i.manifest_sha256, location=i.location)
            for i in (manifest.inputs if manifest else ())
        ),
        consumed_by=tuple(c.key for c in node.consumers),
        outputs=tuple(
            OutputInfo(path=f.path, size=f.size, sha256=f.sha256) for f in (manifest.files if manifest else ())
        ),
        image=(manifest.image if manifest else None) or _tag(run, tags.IMAGE),
        environment=(manifest.environment if manifest else None) or _tag(run, tags.ENVIRONMENT),
        packages_sha256=(manifest.packages_sha256 if manifest else None) or _tag(run, tags.PACKAGES_SHA256),
        git_commit=(manifest.git_commit if manifest else None) or _tag(run, tags.GIT_COMMIT),
        git_dirty=_flag(_tag(run, tags.GIT_DIRTY)) if dirty is None else dirty,
        lock_sha256=(manifest.lock_sha256 if manifest else None) or _tag(run, tags.LOCK_SHA256),
        airflow=_airflow(run) if run is not None else None,
        started_at=iso(run.start_time) if run is not None else None,
        ended_at=iso(run.end_time) if run is not None else None,
        finished_at=manifest.finished_at if manifest is not None else None,
        failure=_failure(run),
        notes=tuple(notes),
        who=_who(run) if run is not None else None,
        models=_models(node),
        carried=_carried(node),
    )


def _notes(node: AttemptRecord) -> list[str]:
    """Remarks on the attempt that are not checks."""
    notes, manifest = [], node.manifest
    if node.role == "model" and manifest is not None and manifest.schema_version < 4:
        notes.append(
            f"recorded before nbops sealed registered models (manifest schema {manifest.schema_version}): "
            "the model's own files are not verified"
        )
    if not node.expects_manifest:
        notes.append(
            "the stage has no attempt in this run"
            if node.attempt is None
            else "no successful attempt in this run: shown as its last attempt ended, not verified"
        )
    return notes


def _models(node: AttemptRecord) -> tuple[SealedModelInfo, ...]:
    """The model versions the manifest seals."""
    return tuple(
        SealedModelInfo(
            name=m.name,
            version=m.version,
            source=m.source,
            files=len(m.files),
            sha256=m.sha256,
            signed=m.signature_sha256 is not None,
        )
        for m in (node.manifest.models if node.manifest is not None else ())
    )


def _carried(node: AttemptRecord) -> tuple[CarriedInfo, ...]:
    """The helper files the manifest lists, with where the walk found their copies."""
    listed = node.manifest.carried if node.manifest is not None else ()
    where = {copy.recorded_sha256: copy.location for copy in node.carried}
    return tuple(CarriedInfo(path=c.path, sha256=c.sha256, location=where.get(c.sha256, "")) for c in listed)


def _notebook(lineage: Lineage, node: AttemptRecord) -> NotebookInfo | None:
    """The notebook the attempt ran: as its manifest records it, else its stage run or the sources index."""
    manifest, copy = node.manifest, lineage.notebooks.get(node.spec_stage)
    path = (manifest.notebook.path if manifest else "") or _tag(node.run, tags.NOTEBOOK_PATH)
    if not path and lineage.sources is not None and node.spec_stage in lineage.sources.notebooks:
        path = lineage.sources.notebooks[node.spec_stage].path
    sha = (manifest.notebook.sha256 if manifest else "") or _tag(node.run, tags.NOTEBOOK_SHA256)
    if not (path or sha or copy):
        return None
    return NotebookInfo(
        path=path, sha256=sha or (copy.recorded_sha256 if copy else ""), location=copy.location if copy else ""
    )


def _failure(run: RunRecord | None) -> FailureInfo | None:
    """How the stage run failed, when its tags say it did."""
    if run is None or not any(run.tag(t) for t in (tags.FAILED_CELL, tags.ERROR, tags.ERROR_MESSAGE)):
        return None
    return FailureInfo(
        cell=run.tag(tags.FAILED_CELL),
        execution_count=run.tag(tags.FAILED_EXECUTION_COUNT),
        error=run.tag(tags.ERROR),
        message=run.tag(tags.ERROR_MESSAGE),
    )


# -- parameters ------------------------------------------------------------------------------


def _parameters(lineage: Lineage, node: AttemptRecord) -> tuple[tuple[ParameterInfo, ...], list[str]]:
    """Effective parameters, each told apart as the notebook's default, the spec's value or an override."""
    notes: list[str] = []
    if node.manifest is None and node.run is None:
        return (), notes
    defaults, problem = _defaults(lineage.notebooks.get(node.spec_stage))
    if problem:
        notes.append(f"notebook defaults unknown: {problem}")
    if node.manifest is not None:
        effective: dict[str, Any] = dict(node.manifest.parameters)
    else:
        params = node.run.params if node.run is not None else {}
        effective = {k: _decoded(v, defaults.get(k)) for k, v in params.items()}
    declared = lineage.stage_spec(node.spec_stage).get("parameters")
    spec: Mapping[str, Any] = declared if isinstance(declared, dict) else {}
    prefix = f"{node.spec_stage}."
    point = node.manifest.point.parameters if node.manifest is not None and node.manifest.point else {}
    parent = lineage.parent
    overrides = {k.removeprefix(prefix) for k in (parent.params if parent else {}) if k.startswith(prefix)}
    values = effective | {name: value for name, value in defaults.items() if name not in effective}
    run_date = node.run.tag(tags.RUN_DATE) if node.run is not None else ""
    found = tuple(
        ParameterInfo(
            name=name,
            value=value,
            source="point"
            if name in point
            else "override"
            if name in overrides
            else _origin(name, value, spec, defaults, run_date),
            default=defaults.get(name),
            spec=spec.get(name),
        )
        for name, value in values.items()
    )
    return found, notes


def _origin(name: str, value: Any, spec: Mapping[str, Any], defaults: Mapping[str, Any], run_date: str) -> Origin:
    """``spec`` (else ``default``) when the value is the one the spec (else the notebook) sets;
    ``run date`` when the spec's value names the run date (``${run_date}``) and the value is it,
    substituted; ``override`` when it differs, or when neither sets the parameter."""
    if name in spec:
        if run_date and isinstance(spec[name], str) and rundate.PLACEHOLDER in spec[name]:
            return "run date" if _same(value, spec[name].replace(rundate.PLACEHOLDER, run_date)) else "override"
        return "spec" if _same(value, spec[name]) else "override"
    if name in defaults:
        return "default" if _same(value, defaults[name]) else "override"
    return "override"


def _decoded(text: str, default: Any) -> Any:
    """An MLflow param's value (``param_text``) back as JSON, unless the notebook declares a string."""
    if isinstance(default, str):
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if param_text(value) == text else text


def _same(a: Any, b: Any) -> bool:
    """Equal values; a typed value also equals its MLflow text (the params of unfinished attempts)."""
    if isinstance(a, str) != isinstance(b, str):
        return param_text(a) == param_text(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _defaults(copy: Copy | None) -> tuple[dict[str, Any], str]:
    """The notebook's own defaults, from the parameters cell of its content-addressed copy."""
    if copy is None:
        return {}, "no copy of the notebook is known"
    if copy.raw is None:
        return {}, f"{copy.location} is missing"
    try:
        data = json.loads(copy.raw.decode("utf-8"))
        cells = [
            {**cell, "source": "".join(cell["source"]) if isinstance(cell.get("source"), list) else cell.get("source")}
            for cell in data["cells"]
            if isinstance(cell, dict)
        ]
        return parse_parameters(cells, copy.location).defaults, ""
    except InputError as exc:
        return {}, exc.message
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        return {}, f"{copy.location} is not a notebook ({exc})"


__all__ = ["build_report"]
