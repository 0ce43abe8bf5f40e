"""Gather a lineage: the MLflow records and the store files behind a model version or a run.

The walk goes model version -> its stage run -> the pipeline (parent) run -> the attempt's
manifest in the artifact store -> every upstream attempt named in ``Manifest.inputs``,
recursively. It reads and records; it judges nothing (:mod:`nbops.audit.verify` does). What
cannot be found is recorded as a :class:`Gap` or as a missing value, never raised: the audit
reports it. Only an unreachable store or tracking server raises (InfraError).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from nbops.audit.refs import ModelRef
from nbops.errors import InfraError, InputError
from nbops.lock import lock_rel, notebook_rel
from nbops.provenance import SOURCES_ARTIFACT, Sources, spec_rel
from nbops.status import StageStatus
from nbops.storage import Store, layout
from nbops.storage.manifest import Manifest, ManifestInput, ReusedAttempt, parse_manifest
from nbops.tracking import record, tags
from nbops.tracking.store import redact_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion

T = TypeVar("T")

MANIFEST_ARTIFACT = "manifest.json"
"""The stage run's copy of its attempt's manifest."""
"""Value of the ``DATASET_CONTEXT`` input tag on datasets standing for upstream attempts."""
STAGE_KIND = "stage"
PIPELINE_KIND = "pipeline"
INTERACTIVE_KIND = "interactive"
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})
_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
_SEARCH_PAGE = 1000
_EXPERIMENT_CHUNK = 50

Role = Literal["model", "stage", "upstream", "reused"]
"""``reused``: the completed attempt a ``cached`` attempt stands for (incremental runs)."""


@dataclass(frozen=True)
class DatasetRecord:
    """One dataset input of an MLflow run."""

    name: str
    digest: str
    profile: str
    source: str
    context: str


@dataclass(frozen=True)
class RunRecord:
    """What an MLflow run says."""

    run_id: str
    experiment_id: str
    status: str
    start_time: int | None
    end_time: int | None
    tags: Mapping[str, str]
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    datasets: tuple[DatasetRecord, ...]

    def tag(self, name: str) -> str:
        """A tag's value, ``""`` when unset."""
        return self.tags.get(name, "")


@dataclass(frozen=True)
class Copy:
    """A content-addressed source copy in the store."""

    rel: str
    location: str
    raw: bytes | None
    recorded_sha256: str
    """The sha256 the records give the file (the sources index, else a tag or the name)."""
    indexed: bool
    """Whether ``pipeline/sources.json`` named this copy (else its place was derived from a hash)."""


@dataclass(frozen=True)
class Consumer:
    """A downstream attempt that recorded this attempt's manifest hash."""

    key: str
    manifest_sha256: str
    location: str


@dataclass
class AttemptRecord:
    """One stage attempt: its MLflow stage run and its files in the store."""

    stage: str
    attempt: int | None
    role: Role
    rel: str = ""
    location: str = ""
    manifest_location: str = ""
    run: RunRecord | None = None
    run_note: str = ""
    """Why ``run`` is None, when it should exist."""
    stored_manifest: bytes | None = None
    manifest: Manifest | None = None
    manifest_error: str = ""
    recorded_manifest: bytes | None = None
    """The stage run's ``manifest.json`` artifact."""
    consumers: list[Consumer] = field(default_factory=list)
    expects_manifest: bool = True
    """False for a stage shown without a successful attempt (failed, running, not run)."""
    run_key: str = ""
    """The pipeline run the attempt belongs to, when it is not the audited one (a reused attempt)."""

    @property
    def key(self) -> str:
        """``stage#attempt`` (``stage#attempt@run`` in another run), or the stage alone when it never ran."""
        if self.attempt is None:
            return self.stage
        return f"{self.stage}#{self.attempt}" + (f"@{self.run_key}" if self.run_key else "")

    @property
    def status(self) -> str:
        """A :class:`StageStatus` value, ``not run``, or what MLflow says."""
        if self.run is not None and self.run.tag(tags.STATUS):
            return self.run.tag(tags.STATUS)
        if self.manifest is not None:
            return self.manifest.status
        if self.run is not None:
            return {"FINISHED": StageStatus.SUCCEEDED.value, "RUNNING": "running"}.get(
                self.run.status, self.run.status.lower()
            )
        return "not run" if self.attempt is None else "unknown"


class ModelInfo(BaseModel):
    """A registered model version, as the registry records it (the report's ``subject.model``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    aliases: tuple[str, ...]
    registered_at: str | None
    source: str
    source_run: str
    """The version's MLflow run id."""
    tags: dict[str, str]


@dataclass(frozen=True)
class Gap:
    """A record the walk needed and did not find: reported as a failed check."""

    subject: str
    detail: str
    location: str = ""


@dataclass
class Lineage:
    """Everything the walk found."""

    subject: Literal["model", "run"]
    ref: str
    store_url: str
    tracking_uri: str
    model: ModelInfo | None = None
    pipeline: str = ""
    run_id: str = ""
    parent: RunRecord | None = None
    sources: Sources | None = None
    sources_note: str = ""
    spec: Copy | None = None
    spec_data: dict[str, Any] = field(default_factory=dict)
    lock: Copy | None = None
    notebooks: dict[str, Copy] = field(default_factory=dict)
    attempts: list[AttemptRecord] = field(default_factory=list)
    """Upstream first: every attempt comes after the attempts it consumed."""
    gaps: list[Gap] = field(default_factory=list)

    def stage_spec(self, stage: str) -> Mapping[str, Any]:
        """The spec copy's ``stages.<stage>`` mapping (empty when unknown)."""
        stages = self.spec_data.get("stages")
        entry = stages.get(stage) if isinstance(stages, dict) else None
        return entry if isinstance(entry, dict) else {}


# -- MLflow access ---------------------------------------------------------------------------


def _call(fn: Callable[..., T], *args: Any, what: str, **kwargs: Any) -> T:
    return record.call(fn, *args, what=what, **kwargs)


def _pages(fn: Callable[..., Any], *args: Any, what: str, **kwargs: Any) -> Iterator[Any]:
    """Every item of a paged MLflow search, page after page."""
    token: str | None = None
    while True:
        page = _call(fn, *args, max_results=_SEARCH_PAGE, page_token=token, what=what, **kwargs)
        yield from page
        token = page.token
        if not token:
            return


def _lookup(fn: Callable[..., T], *args: Any, what: str) -> T | None:
    """The result, or None when MLflow says the thing does not exist."""
    try:
        return record.call(fn, *args, what=what)
    except InfraError as exc:
        if getattr(exc.__cause__, "error_code", "") in _NOT_FOUND:
            return None
        raise


def _run_record(run: Run) -> RunRecord:
    inputs = run.inputs.dataset_inputs if run.inputs is not None else []
    datasets = tuple(
        DatasetRecord(
            name=str(item.dataset.name),
            digest=str(item.dataset.digest),
            profile=str(item.dataset.profile or ""),
            source=str(item.dataset.source or ""),
            context=next((str(t.value) for t in item.tags if t.key == tags.DATASET_CONTEXT), ""),
        )
        for item in inputs
    )
    return RunRecord(
        run_id=str(run.info.run_id),
        experiment_id=str(run.info.experiment_id),
        status=str(run.info.status),
        start_time=run.info.start_time,
        end_time=run.info.end_time,
        tags=dict(run.data.tags),
        params=dict(run.data.params),
        metrics={k: float(v) for k, v in run.data.metrics.items()},
        datasets=datasets,
    )


@contextmanager
def _quiet_downloads() -> Iterator[None]:
    """No progress bars on the terminal while artifacts are read (unless the user asked for them)."""
    if _PROGRESS_BAR in os.environ:
        yield
        return
    os.environ[_PROGRESS_BAR] = "false"
    try:
        yield
    finally:
        os.environ.pop(_PROGRESS_BAR, None)


class Walker:
    """Reads one tracking store and one artifact store; use as a context manager (downloads
    go to a temporary directory removed on exit)."""

    def __init__(self, client: MlflowClient, store: Store) -> None:
        self.client = client
        self.store = store
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._runs: dict[str, RunRecord | None] = {}
        self._uri = redact_uri(str(client.tracking_uri))

    def __enter__(self) -> Walker:
        self._tmp = tempfile.TemporaryDirectory(prefix="nbops-audit-")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- the two walks ---------------------------------------------------------------------------

    def resolve(self, ref: ModelRef) -> ModelInfo:
        """The model version ``ref`` names.

        Raises:
            InputError: no such model, version or alias (the message lists what exists).
        """
        if ref.version is not None:
            found = _lookup(self.client.get_model_version, ref.name, ref.version, what=f"read model version {ref}")
        else:
            found = _lookup(
                self.client.get_model_version_by_alias, ref.name, ref.alias, what=f"read model version {ref}"
            )
        if found is None:
            raise InputError(self._unknown_model(ref))
        return _model_info(found)

    def from_model(self, ref: ModelRef, model: ModelInfo, given: str = "") -> Lineage:
        """The lineage of a registered model version; ``given`` is the reference as the user wrote it."""
        lineage = Lineage(
            subject="model", ref=given or str(ref), store_url=self.store.url, tracking_uri=self._uri, model=model
        )
        run = self._model_run(lineage, model)
        if run is None:
            return lineage
        lineage.pipeline = run.tag(tags.PIPELINE) or model.tags.get(tags.PIPELINE, "")
        lineage.run_id = run.tag(tags.RUN_ID) or model.tags.get(tags.RUN_ID, "")
        parent = self._parent_of(run)
        if parent is None:
            lineage.gaps.append(
                Gap(
                    "pipeline run",
                    f"stage run {run.run_id} names pipeline run {run.tag(tags.PARENT_RUN) or '(none)'}, "
                    f"which is not in the tracking store (nbops run {lineage.run_id or 'unknown'}).",
                )
            )
        self._pipeline(lineage, parent)
        index = self._stage_runs(parent) if parent is not None else {}
        root = self._attempt(lineage, run, role="model")
        self._follow(lineage, root, index)
        return lineage

    def from_run(self, run_id: str, prefer_pipeline: str | None = None) -> Lineage:
        """The lineage of every stage of nbops pipeline run ``run_id``.

        Raises:
            InputError: no pipeline run has that id, or several pipelines do.
        """
        parent = self._find_pipeline_run(run_id, prefer_pipeline)
        lineage = Lineage(subject="run", ref=run_id, store_url=self.store.url, tracking_uri=self._uri, run_id=run_id)
        lineage.pipeline = parent.tag(tags.PIPELINE)
        self._pipeline(lineage, parent)
        index = self._stage_runs(parent)
        stages = list(self._spec_stages(lineage))
        stages += sorted({stage for stage, _ in index} - set(stages))
        chosen = [self._stage_attempt(lineage, stage, index) for stage in _upstream_first(stages, lineage)]
        for attempt in chosen:
            if attempt.expects_manifest:
                self._follow(lineage, attempt, index)
            elif attempt not in lineage.attempts:
                lineage.attempts.append(attempt)
        return lineage

    def _model_run(self, lineage: Lineage, model: ModelInfo) -> RunRecord | None:
        """The stage run that registered ``model``; None, with a gap recorded, when there is none."""
        what = f"model version {model.name}/{model.version}"
        stage_run_id = model.tags.get(tags.STAGE_RUN) or model.source_run
        run = self._run(stage_run_id) if stage_run_id else None
        kind = run.tag(tags.KIND) if run is not None else ""
        if not stage_run_id:
            gap = Gap(
                "lineage", f"{what} names no run (neither a stage run tag nor a source run): no lineage to audit."
            )
        elif run is None:
            gap = Gap("stage run", f"{what} names MLflow run {stage_run_id}, which is not in the tracking store.")
        elif kind != STAGE_KIND:
            how = {INTERACTIVE_KIND: "is an interactive run", PIPELINE_KIND: "is a pipeline (parent) run"}.get(
                kind, f"has nbops kind '{kind}'" if kind else "has no nbops kind"
            )
            gap = Gap(
                "lineage",
                f"{what} was registered outside a pipeline run (its run {stage_run_id} {how}, not a "
                "stage run): no lineage to audit. Register models from a stage of `nbops run` or a promoted DAG.",
            )
        else:
            return run
        lineage.gaps.append(gap)
        return None

    def _stage_attempt(self, lineage: Lineage, stage: str, index: Mapping[tuple[str, int], RunRecord]) -> AttemptRecord:
        """The stage's latest successful attempt; else its last attempt, or the stage alone, not verified."""
        attempts = sorted(((n, r) for (s, n), r in index.items() if s == stage), key=lambda item: item[0])
        done = [(n, r) for n, r in attempts if _succeeded(r)]
        if done:
            return self._attempt(lineage, self._full(done[-1][1]), role="stage")
        if attempts:
            return self._attempt(lineage, self._full(attempts[-1][1]), role="stage", expects_manifest=False)
        return AttemptRecord(stage=stage, attempt=None, role="stage", expects_manifest=False)

    # -- model registry --------------------------------------------------------------------------

    def _unknown_model(self, ref: ModelRef) -> str:
        registered = _lookup(self.client.get_registered_model, ref.name, what=f"read registered model '{ref.name}'")
        where = f"the MLflow tracking store {self._uri}"
        if registered is None:
            return f"model {ref}: there is no registered model '{ref.name}' in {where}."
        if ref.alias is not None:
            aliases = dict(registered.aliases or {})
            known = ", ".join(f"{a} -> version {v}" for a, v in sorted(aliases.items())) or "it has none"
            return f"model {ref}: registered model '{ref.name}' has no alias '{ref.alias}' (aliases: {known})."
        versions = sorted(
            int(v.version)
            for v in _call(
                self.client.search_model_versions,
                f"name = '{ref.name}'" if "'" not in ref.name else "",
                what=f"list the versions of '{ref.name}'",
            )
            if v.name == ref.name
        )
        known = ", ".join(map(str, versions)) or "none"
        return f"model {ref}: registered model '{ref.name}' has no version {ref.version} (versions: {known})."

    # -- runs ------------------------------------------------------------------------------------

    def _run(self, run_id: str) -> RunRecord | None:
        if run_id not in self._runs:
            run = _lookup(self.client.get_run, run_id, what=f"read MLflow run {run_id}")
            self._runs[run_id] = _run_record(run) if run is not None else None
        return self._runs[run_id]

    def _full(self, run: RunRecord) -> RunRecord:
        """The run as ``get_run`` returns it (search results may leave out dataset inputs)."""
        return self._run(run.run_id) or run

    def _parent_of(self, run: RunRecord) -> RunRecord | None:
        parent_id = run.tag(tags.PARENT_RUN)
        if parent_id:
            return self._run(parent_id)
        if not run.tag(tags.RUN_ID):
            return None
        found = self._search(
            [run.experiment_id],
            f"tags.`{tags.RUN_ID}` = '{_unquoted(run.tag(tags.RUN_ID))}' and tags.`{tags.KIND}` = '{PIPELINE_KIND}'",
            what="search for the pipeline run",
        )
        return _oldest(found)

    def _find_pipeline_run(self, run_id: str, prefer_pipeline: str | None) -> RunRecord:
        if not run_id.strip() or "'" in run_id or "\\" in run_id:
            raise InputError(f"'{run_id}' is not an nbops run id (e.g. 20261123T101500Z-3f9a1c or manual__...).")
        experiments = self._experiments()
        where = f"the MLflow tracking store {self._uri}"
        found = self._search(
            experiments,
            f"tags.`{tags.RUN_ID}` = '{run_id}' and tags.`{tags.KIND}` = '{PIPELINE_KIND}'",
            what=f"search for pipeline run {run_id}",
        )
        if not found:
            raise InputError(
                f"run {run_id}: no pipeline run with this nbops run id in {where}. Give the nbops run id "
                "(as `nbops run` prints it or the Airflow DAG run id), not an MLflow run id."
            )
        by_pipeline: dict[str, list[RunRecord]] = {}
        for run in found:
            by_pipeline.setdefault(run.tag(tags.PIPELINE), []).append(run)
        if len(by_pipeline) > 1:
            if prefer_pipeline in by_pipeline:
                return _oldest(by_pipeline[prefer_pipeline]) or found[0]
            names = ", ".join(sorted(by_pipeline))
            raise InputError(
                f"run {run_id}: pipelines {names} all have a run with this id in {where}; run the audit "
                "from the directory of the pipeline meant (or pass its pipeline file)."
            )
        return _oldest(found) or found[0]

    def _experiments(self) -> list[str]:
        return [str(e.experiment_id) for e in _pages(self.client.search_experiments, what="list experiments")]

    def _search(self, experiment_ids: list[str], filter_string: str, *, what: str) -> list[RunRecord]:
        found: list[RunRecord] = []
        for start in range(0, len(experiment_ids), _EXPERIMENT_CHUNK):
            chunk = experiment_ids[start : start + _EXPERIMENT_CHUNK]
            found.extend(
                _run_record(r) for r in _pages(self.client.search_runs, chunk, filter_string=filter_string, what=what)
            )
        return found

    def _stage_runs(self, parent: RunRecord) -> dict[tuple[str, int], RunRecord]:
        """The pipeline run's stage runs by (stage, attempt); of duplicates, the newest wins."""
        runs = self._search(
            [parent.experiment_id],
            f"tags.`{tags.PARENT_RUN}` = '{parent.run_id}'",
            what="list the stage runs",
        )
        index: dict[tuple[str, int], RunRecord] = {}
        for run in sorted(runs, key=lambda r: (r.start_time or 0, r.run_id)):
            stage, attempt = run.tag(tags.STAGE), _int(run.tag(tags.ATTEMPT))
            if run.tag(tags.KIND) == STAGE_KIND and stage and attempt is not None:
                index[(stage, attempt)] = run
        return index

    # -- the pipeline run ------------------------------------------------------------------------

    def _pipeline(self, lineage: Lineage, parent: RunRecord | None) -> None:
        """Sources index, spec, lock and notebook copies of the pipeline run."""
        lineage.parent = parent
        if parent is None:
            return
        lineage.pipeline = lineage.pipeline or parent.tag(tags.PIPELINE)
        raw = self._artifact(parent.run_id, SOURCES_ARTIFACT)
        if raw is None:
            lineage.sources_note = (
                f"pipeline run {parent.run_id} (nbops run {lineage.run_id}) has no {SOURCES_ARTIFACT} artifact"
            )
        else:
            try:
                lineage.sources = Sources.model_validate_json(raw)
            except ValidationError as exc:
                lineage.sources_note = (
                    f"{SOURCES_ARTIFACT} of pipeline run {parent.run_id} is not a sources index "
                    f"({exc.error_count()} problem(s), first: {exc.errors()[0]['msg']})"
                )
        sources = lineage.sources
        if sources is not None:
            lineage.spec = self._copy(sources.spec.store_path, sources.spec.sha256, indexed=True)
            if sources.lock is not None:
                lineage.lock = self._copy(sources.lock.store_path, sources.lock.sha256, indexed=True)
            for stage, notebook in sources.notebooks.items():
                lineage.notebooks[stage] = self._copy(notebook.store_path, notebook.sha256, indexed=True)
        if lineage.spec is None and _is_sha(parent.tag(tags.SPEC_SHA256)):
            lineage.spec = self._copy(spec_rel(parent.tag(tags.SPEC_SHA256)), parent.tag(tags.SPEC_SHA256), False)
        if lineage.lock is None and _is_sha(parent.tag(tags.LOCK_SHA256)):
            lineage.lock = self._copy(lock_rel(parent.tag(tags.LOCK_SHA256)), parent.tag(tags.LOCK_SHA256), False)
        if lineage.spec is not None and lineage.spec.raw is not None:
            lineage.spec_data = _yaml_mapping(lineage.spec.raw)

    def _copy(self, rel: str, sha256: str, indexed: bool) -> Copy:
        return Copy(rel, self.store.location(rel), self.store.read_bytes(rel), sha256, indexed)

    def _spec_stages(self, lineage: Lineage) -> list[str]:
        stages = lineage.spec_data.get("stages")
        if isinstance(stages, dict):
            return [str(s) for s in stages]
        return list(lineage.sources.notebooks) if lineage.sources is not None else []

    # -- attempts --------------------------------------------------------------------------------

    def _attempt(self, lineage: Lineage, run: RunRecord, *, role: Role, expects_manifest: bool = True) -> AttemptRecord:
        stage, number = run.tag(tags.STAGE), _int(run.tag(tags.ATTEMPT))
        node = AttemptRecord(stage=stage, attempt=number, role=role, run=run, expects_manifest=expects_manifest)
        rel = run.tag(tags.ATTEMPT_PATH)
        if not rel and number is not None and stage:
            pipeline = run.tag(tags.PIPELINE) or lineage.pipeline
            run_id = run.tag(tags.RUN_ID) or lineage.run_id
            rel = layout.attempt_rel(pipeline, run_id, stage, number) if pipeline and run_id else ""
        if not rel:
            node.manifest_error = f"stage run {run.run_id} records neither its attempt path nor stage and attempt"
        self._load(lineage, node, rel)
        self._notebook(lineage, node)
        if expects_manifest:
            node.recorded_manifest = self._artifact(run.run_id, MANIFEST_ARTIFACT)
        return node

    def _load(self, lineage: Lineage, node: AttemptRecord, rel: str) -> None:
        """Read the attempt's manifest from the store."""
        node.rel = rel
        node.location = self.store.location(rel) if rel else ""
        if rel and node.expects_manifest:
            manifest_rel = f"{rel}/{layout.MANIFEST}"
            node.manifest_location = self.store.location(manifest_rel)
            node.stored_manifest = self.store.read_bytes(manifest_rel)
            if node.stored_manifest is not None:
                try:
                    node.manifest = parse_manifest(node.stored_manifest, node.manifest_location)
                except InputError as exc:
                    node.manifest_error = exc.message

    def _notebook(self, lineage: Lineage, node: AttemptRecord) -> None:
        """Make sure the stage's notebook copy is known: without a sources index, its place
        follows from the hash the manifest or the stage run records."""
        if not node.stage or node.stage in lineage.notebooks:
            return
        sha = node.manifest.notebook.sha256 if node.manifest is not None else ""
        sha = sha or (node.run.tag(tags.NOTEBOOK_SHA256) if node.run is not None else "")
        if _is_sha(sha):
            lineage.notebooks[node.stage] = self._copy(notebook_rel(sha), sha, indexed=False)

    def _follow(
        self,
        lineage: Lineage,
        node: AttemptRecord,
        index: Mapping[tuple[str, int], RunRecord],
        visiting: frozenset[str] = frozenset(),
    ) -> None:
        """Add ``node`` after every attempt it consumed, depth first (upstream first). A manifest
        naming an attempt that consumed it (only an altered one can) is not followed round."""
        if any(a.key == node.key for a in lineage.attempts) or node.key in visiting:
            return
        manifest = node.manifest
        if manifest is None:
            lineage.attempts.append(node)
            return
        edges: list[tuple[str, int, str, ManifestInput | ReusedAttempt, Role]] = [
            (consumed.stage, consumed.attempt, _other_run(consumed.location, lineage), consumed, "upstream")
            for consumed in manifest.inputs
        ]
        if manifest.reused is not None:  # a cached attempt: the one it stands for comes first
            reused = manifest.reused
            other = "" if layout.run_key(reused.run_id) == _audited_key(lineage) else layout.run_key(reused.run_id)
            edges.append((manifest.stage, reused.attempt, other, reused, "reused"))
        for stage, number, other, named, role in edges:
            key = f"{stage}#{number}" + (f"@{other}" if other else "")
            upstream = next((a for a in lineage.attempts if a.key == key), None)
            if upstream is None and key not in visiting | {node.key}:
                upstream = self._upstream(lineage, manifest, stage, number, index, other, role)
            if upstream is None:
                continue
            upstream.consumers.append(Consumer(node.key, named.manifest_sha256, named.location))
            self._follow(lineage, upstream, index, visiting | {node.key})
        lineage.attempts.append(node)

    def _upstream(
        self,
        lineage: Lineage,
        consumer: Manifest,
        stage: str,
        attempt: int,
        index: Mapping[tuple[str, int], RunRecord],
        other_run: str = "",
        role: Role = "upstream",
    ) -> AttemptRecord:
        node = AttemptRecord(stage=stage, attempt=attempt, role=role, run_key=other_run)
        run_of = other_run or consumer.run_id
        self._load(lineage, node, layout.attempt_rel(consumer.pipeline, run_of, stage, attempt))
        run_id = node.manifest.mlflow_run_id if node.manifest is not None else ""
        run = self._run(run_id) if run_id else None
        if run is None and not other_run and (stage, attempt) in index:
            run = self._full(index[(stage, attempt)])
        node.run = run
        if run is None:
            named = f"MLflow run {run_id}, named by its manifest," if run_id else "its MLflow stage run"
            node.run_note = f"{named} is not in the tracking store"
        else:
            node.recorded_manifest = self._artifact(run.run_id, MANIFEST_ARTIFACT)
        self._notebook(lineage, node)
        return node

    # -- artifacts -------------------------------------------------------------------------------

    def _artifact(self, run_id: str, path: str) -> bytes | None:
        """An artifact's bytes, or None when the run has no such artifact."""
        folder = path.rpartition("/")[0] or None
        listed = _call(self.client.list_artifacts, run_id, folder, what=f"list the artifacts of run {run_id}")
        if not any(info.path == path and not info.is_dir for info in listed):
            return None
        assert self._tmp is not None, "Walker used outside its context"  # noqa: S101 - programming error
        target = tempfile.mkdtemp(dir=self._tmp.name)
        with _quiet_downloads():
            local = _call(self.client.download_artifacts, run_id, path, target, what=f"download {path} of run {run_id}")
        return Path(local).read_bytes()


# -- helpers -----------------------------------------------------------------------------------

_ATTEMPT_LOCATION = re.compile(r"(?:^|/)runs/[^/]+/([^/]+)/[^/]+/attempt-[0-9]+/?$")


def _audited_key(lineage: Lineage) -> str:
    return layout.run_key(lineage.run_id) if lineage.run_id.strip("-.") else ""


def _other_run(location: str, lineage: Lineage) -> str:
    """The run key in an upstream attempt's recorded location when it is not the audited run's (the
    upstream was reused from another run); ``""`` for the audited run or an unparsable location."""
    found = _ATTEMPT_LOCATION.search(location.replace("\\", "/"))
    if found is None or found.group(1) == _audited_key(lineage):
        return ""
    return found.group(1)


def _model_info(version: ModelVersion) -> ModelInfo:
    return ModelInfo(
        name=str(version.name),
        version=str(version.version),
        aliases=tuple(sorted(str(a) for a in (version.aliases or []))),
        registered_at=iso(version.creation_timestamp),
        source=str(version.source or ""),
        source_run=str(version.run_id or ""),
        tags=dict(version.tags or {}),
    )


def iso(ms: int | None) -> str | None:
    """Milliseconds since the epoch (as MLflow records times) as ISO 8601 (UTC), None when unset."""
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def _succeeded(run: RunRecord) -> bool:
    value = run.tag(tags.STATUS)
    if not value:
        return run.status == "FINISHED"
    try:
        return StageStatus(value).succeeded
    except ValueError:
        return False


def _oldest(runs: list[RunRecord]) -> RunRecord | None:
    """Of duplicate parent runs every reader picks the oldest (as ``pipeline_run.find`` does)."""
    return min(runs, key=lambda r: (r.start_time or 0, r.run_id), default=None)


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _is_sha(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _unquoted(text: str) -> str:
    return text.replace("'", "")


def _upstream_first(stages: list[str], lineage: Lineage) -> list[str]:
    """``stages`` ordered so that each comes after the stages it needs (spec order otherwise)."""
    ordered: list[str] = []

    def visit(stage: str, path: tuple[str, ...]) -> None:
        if stage in ordered or stage in path:
            return
        needs = lineage.stage_spec(stage).get("needs") or ()
        for up in needs if isinstance(needs, list | tuple) else ():
            if str(up) in stages:
                visit(str(up), (*path, stage))
        ordered.append(stage)

    for stage in stages:
        visit(stage, ())
    return ordered


def _yaml_mapping(raw: bytes) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def dataset_profile(dataset: DatasetRecord) -> dict[str, Any]:
    """A dataset input's profile as a mapping (empty when it is not a JSON object)."""
    try:
        data = json.loads(dataset.profile)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


__all__ = [
    "AttemptRecord",
    "Consumer",
    "Copy",
    "DatasetRecord",
    "Gap",
    "Lineage",
    "ModelInfo",
    "RunRecord",
    "Walker",
    "dataset_profile",
    "iso",
]
