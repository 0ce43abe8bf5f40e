"""What ran, archived once (DESIGN §8), and the pipeline run's record closed on every backend.

The source bytes of the spec and of every stage notebook are stored content-addressed in
the artifact root, next to the promoted locks::

    <artifact root>/specs/<sha256>.yaml
    <artifact root>/notebooks/<sha256>.ipynb
    <artifact root>/locks/<sha256>.json

so a thousand runs of an unchanged notebook keep one copy. The parent MLflow run holds the
index of what its run used (``pipeline/sources.json``: each file's path as the spec names
it, its sha256 and where the copy lives), the spec itself and, for a promoted run, the lock.

``nbops run`` archives and closes its own parent run. Under Airflow, the DAG's last task
runs :func:`close_promoted_run` whatever happened upstream: it archives, records the DAG
run (dag id, run id, logical date, conf), closes stage records left open by a pod that
died, and closes the parent ``FINISHED``, ``FAILED`` or ``KILLED`` as the stages ended. The
monitor DAG's last task does the same for its run, whose only stage is ``monitor``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nbops.errors import InputError
from nbops.graph import GATE_TASK, MONITOR_STAGE
from nbops.lock import fetch_lock, file_rel, lock_rel, notebook_rel
from nbops.spec import Pipeline
from nbops.status import PipelineOutcome, RunStatus, StageStatus
from nbops.storage import Store
from nbops.tracking import leaderboard, pipeline_run, query, record, tags
from nbops.tracking.tags import flag
from nbops.tracking.who import who_tags

if TYPE_CHECKING:
    from mlflow import MlflowClient

SOURCES_ARTIFACT = "pipeline/sources.json"
"""The parent run's index of what ran."""
PIPELINE_ARTIFACTS = "pipeline"
"""Artifact directory of the parent run holding the spec and the lock."""
SPECS_DIR = "specs"


def spec_rel(sha256: str) -> str:
    """Where a spec's bytes live, relative to the artifact root."""
    return f"{SPECS_DIR}/{sha256}.yaml"


class SourceFile(BaseModel):
    """One source file a run used, by content."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(description="The file as the spec names it (the spec: its file name).")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of its bytes.")
    store_path: str = Field(description="Where the copy lives, relative to the artifact root.")


class Sources(BaseModel):
    """``pipeline/sources.json`` of a parent run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = Field(1, description="Format version of this index.")
    pipeline: str = Field(description="Pipeline name.")
    spec: SourceFile = Field(description="The pipeline spec.")
    lock: SourceFile | None = Field(None, description="The promoted lock (runs from a DAG only).")
    notebooks: dict[str, SourceFile] = Field(description="Each stage's notebook, by stage.")
    files: dict[str, tuple[SourceFile, ...]] = Field(
        default_factory=dict, description="The helper files each stage carries (its `files:`, the *.py beside it)."
    )

    def to_text(self) -> str:
        """Canonical JSON text."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def publish_sources(
    store: Store, pipeline: Pipeline, lock_sha256: str | None = None, stages: Sequence[str] | None = None
) -> Sources:
    """Store the spec and the notebook of each of ``stages`` (default: every stage; ``monitor``
    for a monitor run) content-addressed (a no-op for copies already there) and return the
    index. A promoted pipeline's files were published by ``nbops promote``.

    Raises:
        InputError: a notebook of the working tree cannot be read.
        InfraError: the store did not take a copy.
    """
    spec = pipeline.spec
    entries = {name: spec.entry(name) for name in (spec.stages if stages is None else stages)}
    if lock_sha256 is not None:
        notebooks = {
            name: SourceFile(path=stage.notebook, sha256=pipeline.frozen[name].sha256,
                             store_path=notebook_rel(pipeline.frozen[name].sha256))
            for name, stage in entries.items()
        }  # fmt: skip
        lock = SourceFile(path=f"{spec.name}.lock.json", sha256=lock_sha256, store_path=lock_rel(lock_sha256))
        spec_file = SourceFile(path="pipeline.yaml", sha256=pipeline.sha256, store_path=spec_rel(pipeline.sha256))
        files = {
            name: tuple(SourceFile(path=f.path, sha256=f.sha256, store_path=file_rel(f.sha256)) for f in frozen.files)
            for name in entries
            if (frozen := pipeline.frozen.get(name)) is not None and frozen.files
        }
        return Sources(pipeline=spec.name, spec=spec_file, lock=lock, notebooks=notebooks, files=files)
    raw_spec = _read(pipeline.path)
    store.publish(spec_rel(pipeline.sha256), raw_spec)
    notebooks = {}
    for name, stage in entries.items():
        raw = _read(pipeline.notebook_path(name))
        sha = _sha256(raw)
        store.publish(notebook_rel(sha), raw)
        notebooks[name] = SourceFile(path=stage.notebook, sha256=sha, store_path=notebook_rel(sha))
    spec_file = SourceFile(path=pipeline.path.name, sha256=pipeline.sha256, store_path=spec_rel(pipeline.sha256))
    return Sources(pipeline=spec.name, spec=spec_file, notebooks=notebooks, files=_carried(store, pipeline, entries))


def _carried(store: Store, pipeline: Pipeline, stages: Mapping[str, Any]) -> dict[str, tuple[SourceFile, ...]]:
    """Each stage's helper files as the work tree has them, stored by content as promote stores them."""
    files: dict[str, tuple[SourceFile, ...]] = {}
    for name in stages:
        listed = []
        for rel in pipeline.stage_files(name):
            raw = _read(pipeline.root / rel)
            sha = _sha256(raw)
            store.publish(file_rel(sha), raw)
            listed.append(SourceFile(path=rel, sha256=sha, store_path=file_rel(sha)))
        if listed:
            files[name] = tuple(listed)
    return files


def archive(client: MlflowClient, parent_id: str, store: Store, sources: Sources) -> None:
    """Log the index, the spec and (promoted) the lock on the parent run."""
    record.call(client.log_text, parent_id, sources.to_text(), SOURCES_ARTIFACT, what="log the sources index")
    files = [sources.spec] + ([sources.lock] if sources.lock else [])
    for source in files:
        raw = store.read_bytes(source.store_path)
        if raw is None:
            continue  # the audit reports the missing copy; the run's record still closes
        name = f"{PIPELINE_ARTIFACTS}/{Path(source.path).name}"
        record.call(client.log_text, parent_id, raw.decode("utf-8", "replace"), name, what=f"log {name}")


def log_overrides(client: MlflowClient, parent_id: str, overrides: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Log ``-p``/conf overrides as ``stage.name`` params; returns the keys not logged because a
    resumed run had logged another value (MLflow params never change)."""
    existing = query.run(client, parent_id, "read the pipeline run").data.params
    fresh: dict[str, Any] = {}
    conflicts = []
    for stage, values in overrides.items():
        for name, value in values.items():
            key = f"{stage}.{name}"
            text = record.param_text(value)
            if key not in existing:
                fresh[key] = value
            elif existing[key] != text:
                conflicts.append(key)
    record.log_parameters(client, parent_id, fresh)
    return conflicts


@dataclass(frozen=True)
class AirflowRun:
    """The DAG run a promoted pipeline run belongs to."""

    dag_id: str
    run_id: str
    logical_date: str = ""
    conf: dict[str, Any] = field(default_factory=dict)
    monitor: bool = False
    """A run of the ``<name>_monitor`` DAG: its record holds the monitor notebook and no stage."""

    @classmethod
    def from_json(cls, text: str) -> AirflowRun:
        """Parse the ``--airflow-json`` argument the DAG renders.

        Raises:
            InputError: not the JSON object the DAG writes.
        """
        try:
            data = json.loads(text)
            conf = data.get("conf") or {}
            if not isinstance(conf, dict):
                raise TypeError("conf is not an object")
            monitor = data.get("monitor", False)
            if not isinstance(monitor, bool):
                raise TypeError("monitor is not a boolean")
            return cls(str(data["dag_id"]), str(data["run_id"]), str(data.get("logical_date") or ""), conf, monitor)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"--airflow-json: not the DAG run description the DAG renders ({exc}).") from None


@dataclass(frozen=True)
class Closed:
    """How a pipeline run's record was closed."""

    parent_run_id: str
    outcome: PipelineOutcome
    stages: dict[str, str]
    """Each stage's outcome: its last attempt's status, or ``not run``."""
    orphans: tuple[str, ...] = ()
    """Stage runs found open (their command died) and closed ``KILLED`` here."""


NOT_RUN = "not run"
"""A stage with no attempt in the run."""
ORPHANED = record.ORPHANED


def settle(client: MlflowClient, experiment_id: str, parent_id: str, stages: list[str]) -> Closed:
    """The pipeline run's outcome from its stages' last attempts; stage runs still open when
    nothing runs any more are closed ``KILLED`` first."""
    runs = query.stage_runs(client, experiment_id, parent_id)
    by_attempt = sorted(runs, key=lambda run: int(run.data.tags.get(tags.ATTEMPT) or 0))
    # the last attempt of each stage, and of each point of a swept stage
    last = {
        (r.data.tags[tags.STAGE], r.data.tags.get(tags.POINT_ID)): r for r in by_attempt if r.data.tags.get(tags.STAGE)
    }
    orphans = []
    for run in runs:
        if run.info.status == RunStatus.RUNNING:
            record.close_orphan(client, run.info.run_id)
            orphans.append(run.info.run_id)
    outcomes = {}
    for stage in stages:
        ended = [
            "killed" if r.info.run_id in orphans else (r.data.tags.get(tags.STATUS) or r.info.status.lower())
            for (name, _), r in last.items()
            if name == stage
        ]
        # a swept stage ends as its worst point did
        outcomes[stage] = (
            next((e for e in ended if PipelineOutcome.of([e]) is not PipelineOutcome.SUCCEEDED), ended[0])
            if ended
            else NOT_RUN
        )
    return Closed(parent_id, PipelineOutcome.of(outcomes.values()), outcomes, tuple(orphans))


def close_promoted_run(store: Store, uri: str, lock_sha256: str, run_id: str, airflow: AirflowRun) -> Closed:
    """Archive, describe and close the parent run of a DAG run of a promoted pipeline.

    Raises:
        InputError: the lock is unknown or altered.
        InfraError: the tracking or artifact store cannot be used.
    """
    from nbops.notebook.redact import Redactor
    from nbops.tracking.store import experiment_location, open_client

    lock, path = fetch_lock(store, lock_sha256)
    pipeline = lock.pipeline(path, store, stage=None)
    if airflow.monitor and pipeline.spec.monitor is None:
        raise InputError(f"lock {lock_sha256[:12]}: a monitor run was to be closed, but the pipeline has no monitor.")
    stages = [MONITOR_STAGE] if airflow.monitor else list(pipeline.spec.stages)
    client = open_client(uri)
    experiment = record.ensure_experiment(client, pipeline.name, experiment_location(uri, store.mlflow_location))
    masked = Redactor.from_env().value(airflow.conf)
    parent = pipeline_run.get_or_create(
        client,
        experiment,
        pipeline.name,
        run_id,
        {tags.SPEC_SHA256: pipeline.sha256, tags.LOCK_SHA256: lock_sha256, tags.TRIGGER: "airflow", **who_tags()},
    )
    archive(client, parent, store, publish_sources(store, pipeline, lock_sha256, stages))
    overrides: dict[str, dict[str, Any]] = {}
    for key, value in masked.items():
        stage, _, name = str(key).partition(".")
        if stage in stages and name:
            overrides.setdefault(stage, {})[name] = value
    log_overrides(client, parent, overrides)
    closed = settle(client, experiment, parent, stages)
    if airflow.monitor and pipeline.spec.retrain is not None:
        closed = _skipped_without_champion(client, pipeline.spec.retrain.model, closed)
    if pipeline.spec.retrain is not None and not airflow.monitor:
        _record_refusal(client, pipeline.spec.retrain.model, parent)
        if closed.outcome is PipelineOutcome.SUCCEEDED:
            closed = _judged_by_the_gate(client, parent, closed)
    described = {
        tags.AIRFLOW_DAG_ID: airflow.dag_id,
        tags.AIRFLOW_RUN_ID: airflow.run_id,
        tags.AIRFLOW_LOGICAL_DATE: airflow.logical_date,
        tags.AIRFLOW_CONF: json.dumps(masked, sort_keys=True)[: tags.ERROR_MESSAGE_LIMIT * 10],
        tags.GIT_COMMIT: lock.git_commit,
        tags.GIT_DIRTY: flag(lock.git_dirty),
    }
    record.set_tags(client, parent, {k: v for k, v in described.items() if v})
    if not airflow.monitor:
        leaderboard.publish(client, parent, leaderboard.boards(client, experiment, pipeline, run_id))
    pipeline_run.close(client, parent, closed.outcome)
    return closed


REFUSED_BY = "approve_champion (rejected, or no answer in time)"


def _record_refusal(client: MlflowClient, model: str, parent: str) -> None:
    """A decision still awaiting approval when the DAG run ends was refused: Airflow's approval task
    rejected it (or timed out, which rejects), so ``promote_champion`` never ran. Record it as
    ``rejected``, so that no later ``nbops approve`` takes it for a pending one."""
    from nbops.tracking import gate

    decided = query.run_tags(client, parent)
    version = decided.get(tags.GATE_VERSION)
    if decided.get(tags.GATE_DECISION) != gate.Decision.AWAITING_APPROVAL.value or not version:
        return
    try:
        refused = gate.approve(client, model, version, REFUSED_BY, reject=True)
    except InputError:  # decided again since (the champion moved): nothing of this run to record
        return
    gate.apply(client, refused, parent)


def _skipped_without_champion(client: MlflowClient, model: str, closed: Closed) -> Closed:
    """A monitor run whose stage never ran because ``model`` has no champion yet (it exited 99 and
    Airflow skipped it) is ``skipped``, not failed: the DAG run succeeded and sent no alert."""
    if closed.stages.get(MONITOR_STAGE) != NOT_RUN or query.champion_version(client, model) is not None:
        return closed
    return replace(closed, outcome=PipelineOutcome.SKIPPED, stages={MONITOR_STAGE: StageStatus.SKIPPED.value})


def _judged_by_the_gate(client: MlflowClient, parent: str, closed: Closed) -> Closed:
    """A run whose stages all succeeded but whose retraining gate failed or never decided (its task
    failed) failed, as the DAG run did; ``retrain_gate`` is listed with the stages."""
    decided = query.run_tags(client, parent).get(tags.GATE_DECISION)
    if decided and decided != "failed":
        return closed
    return replace(
        closed, outcome=PipelineOutcome.FAILED, stages={**closed.stages, GATE_TASK: decided or "did not decide"}
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc}).") from None


def _sha256(raw: bytes) -> str:
    import hashlib

    return hashlib.sha256(raw).hexdigest()


__all__ = ["AirflowRun", "Closed", "Sources", "archive", "close_promoted_run", "publish_sources"]
