"""Gather a lineage: the MLflow records and the store files behind a model version or a run.

The walk goes model version -> its stage run -> the pipeline (parent) run -> the attempt's
manifest in the artifact store -> every upstream attempt named in ``Manifest.inputs``,
recursively. It reads (through :class:`~nbops.audit.reader.TrackingReader`) and records (in a
:class:`~nbops.audit.lineage.Lineage`); it judges nothing (:mod:`nbops.audit.verify` does).
What cannot be found is recorded as a :class:`Gap` or as a missing value, never raised: the
audit reports it. Only an unreachable store or tracking server raises (InfraError).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from nbops.audit.lineage import (
    AttemptRecord,
    Consumer,
    Copy,
    Gap,
    Lineage,
    ModelEvidence,
    ModelInfo,
    Role,
    RunRecord,
)
from nbops.audit.reader import INTERACTIVE_KIND, PIPELINE_KIND, STAGE_KIND, TrackingReader, parse_int
from nbops.audit.refs import ModelRef
from nbops.errors import InputError
from nbops.lock import file_rel, lock_rel, notebook_rel
from nbops.provenance import SOURCES_ARTIFACT, Sources, spec_rel
from nbops.status import RunStatus, StageStatus
from nbops.storage import Store, layout
from nbops.storage.manifest import Manifest, ManifestInput, ReusedAttempt, parse_manifest
from nbops.sweep import unit
from nbops.tracking import tags

if TYPE_CHECKING:
    from mlflow import MlflowClient

MANIFEST_ARTIFACT = "manifest.json"
"""The stage run's copy of its attempt's manifest."""
RECORDED_FILES = ("output.ipynb", "output.html")
"""The attempt's files its stage run also holds, which auditors open in the MLflow UI."""


class Walker:
    """Reads one tracking store and one artifact store; use as a context manager (downloads
    go to a temporary directory removed on exit)."""

    def __init__(self, client: MlflowClient, store: Store) -> None:
        self.client = client
        self.store = store
        self.tracking = TrackingReader(client)

    def __enter__(self) -> Walker:
        self.tracking.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.tracking.__exit__(*exc)

    # -- the two walks ---------------------------------------------------------------------------

    def resolve(self, ref: ModelRef) -> ModelInfo:
        """The model version ``ref`` names.

        Raises:
            InputError: no such model, version or alias (the message lists what exists).
        """
        found = self.tracking.model_version(ref)
        if found is None:
            raise InputError(self.tracking.unknown_model(ref))
        return found

    def from_model(self, ref: ModelRef, model: ModelInfo, given: str = "") -> Lineage:
        """The lineage of a registered model version; ``given`` is the reference as the user wrote it."""
        lineage = Lineage(
            subject="model",
            ref=given or str(ref),
            store_url=self.store.url,
            tracking_uri=self.tracking.uri,
            model=model,
        )
        run = self._model_run(lineage, model)
        if run is None:
            return lineage
        lineage.pipeline = run.tag(tags.PIPELINE) or model.tags.get(tags.PIPELINE, "")
        lineage.run_id = run.tag(tags.RUN_ID) or model.tags.get(tags.RUN_ID, "")
        parent = self.tracking.parent_of(run)
        if parent is None:
            lineage.gaps.append(
                Gap(
                    "pipeline run",
                    f"stage run {run.run_id} names pipeline run {run.tag(tags.PARENT_RUN) or '(none)'}, "
                    f"which is not in the tracking store (nbops run {lineage.run_id or 'unknown'}).",
                )
            )
        self._pipeline(lineage, parent)
        index = self.tracking.stage_runs(parent) if parent is not None else {}
        root = self._attempt(lineage, run, role="model")
        self._follow(lineage, root, index)
        self._evidence(lineage)
        return lineage

    def from_run(self, run_id: str, prefer_pipeline: str | None = None) -> Lineage:
        """The lineage of every stage of nbops pipeline run ``run_id``.

        Raises:
            InputError: no pipeline run has that id, or several pipelines do.
        """
        parent = self.tracking.find_pipeline_run(run_id, prefer_pipeline)
        lineage = Lineage(
            subject="run", ref=run_id, store_url=self.store.url, tracking_uri=self.tracking.uri, run_id=run_id
        )
        lineage.pipeline = parent.tag(tags.PIPELINE)
        self._pipeline(lineage, parent)
        index = self.tracking.stage_runs(parent)
        stages = list(self._spec_stages(lineage))
        stages += sorted({stage for stage, _ in index} - set(stages))
        # a swept stage is audited point by point (its units are ``stage/point-<id>``)
        swept = {s.partition("/")[0] for s, _ in index if "/" in s}
        stages = [s for s in stages if s not in swept]
        chosen = [self._stage_attempt(lineage, stage, index) for stage in _upstream_first(stages, lineage)]
        for attempt in chosen:
            if attempt.expects_manifest:
                self._follow(lineage, attempt, index)
            elif attempt not in lineage.attempts:
                lineage.attempts.append(attempt)
        self._evidence(lineage)
        return lineage

    def _model_run(self, lineage: Lineage, model: ModelInfo) -> RunRecord | None:
        """The stage run that registered ``model``; None, with a gap recorded, when there is none."""
        what = f"model version {model.name}/{model.version}"
        stage_run_id = model.tags.get(tags.STAGE_RUN) or model.source_run
        run = self.tracking.run(stage_run_id) if stage_run_id else None
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
            return self._attempt(lineage, self.tracking.full(done[-1][1]), role="stage")
        if attempts:
            return self._attempt(lineage, self.tracking.full(attempts[-1][1]), role="stage", expects_manifest=False)
        return AttemptRecord(stage=stage, attempt=None, role="stage", expects_manifest=False)

    def _evidence(self, lineage: Lineage) -> None:
        """What each sealed attempt's manifest lists beyond its own files: the stage run's copies of
        them, the carried helper files' copies, the sealed models' files as the registry has them."""
        for node in lineage.attempts:
            manifest = node.manifest
            if manifest is None or not node.expects_manifest:
                continue
            listed = {f.path for f in manifest.files}
            if node.run is not None:
                node.recorded_files = {
                    name: self.tracking.artifact(node.run.run_id, name) for name in RECORDED_FILES if name in listed
                }
            node.carried = [self._copy(file_rel(c.sha256), c.sha256, indexed=False) for c in manifest.carried]
            for sealed in manifest.models:
                directory, version_tags, error = self.tracking.model_files(sealed.name, sealed.version)
                node.models.append(ModelEvidence(sealed, directory, version_tags, error))

    # -- the pipeline run ------------------------------------------------------------------------

    def _pipeline(self, lineage: Lineage, parent: RunRecord | None) -> None:
        """Sources index, spec, lock and notebook copies of the pipeline run."""
        lineage.parent = parent
        if parent is None:
            return
        lineage.pipeline = lineage.pipeline or parent.tag(tags.PIPELINE)
        raw = self.tracking.artifact(parent.run_id, SOURCES_ARTIFACT)
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
        stage, number = unit(run.tag(tags.STAGE), run.tag(tags.POINT_ID) or None), parse_int(run.tag(tags.ATTEMPT))
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
            node.recorded_manifest = self.tracking.artifact(run.run_id, MANIFEST_ARTIFACT)
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
        stage = node.stage.partition("/")[0]  # a point's notebook is its stage's
        if not stage or stage in lineage.notebooks:
            return
        sha = node.manifest.notebook.sha256 if node.manifest is not None else ""
        sha = sha or (node.run.tag(tags.NOTEBOOK_SHA256) if node.run is not None else "")
        if _is_sha(sha):
            lineage.notebooks[stage] = self._copy(notebook_rel(sha), sha, indexed=False)

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
            (consumed.unit, consumed.attempt, _other_run(consumed.location, lineage), consumed, "upstream")
            for consumed in manifest.inputs
        ]
        if manifest.reused is not None:  # a cached attempt: the one it stands for comes first
            reused = manifest.reused
            other = "" if layout.run_key(reused.run_id) == _audited_key(lineage) else layout.run_key(reused.run_id)
            edges.append((manifest.unit, reused.attempt, other, reused, "reused"))
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
        run = self.tracking.run(run_id) if run_id else None
        if run is None and not other_run and (stage, attempt) in index:
            run = self.tracking.full(index[(stage, attempt)])
        node.run = run
        if run is None:
            named = f"MLflow run {run_id}, named by its manifest," if run_id else "its MLflow stage run"
            node.run_note = f"{named} is not in the tracking store"
        else:
            node.recorded_manifest = self.tracking.artifact(run.run_id, MANIFEST_ARTIFACT)
        self._notebook(lineage, node)
        return node


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


def _succeeded(run: RunRecord) -> bool:
    value = run.tag(tags.STATUS)
    if not value:
        return run.status == RunStatus.FINISHED
    try:
        return StageStatus(value).succeeded
    except ValueError:
        return False


def _is_sha(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


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


__all__ = ["MANIFEST_ARTIFACT", "RECORDED_FILES", "Walker"]
