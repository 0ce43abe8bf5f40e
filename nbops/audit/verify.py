"""Checks: every hash a lineage records, recomputed from the bytes in the artifact store.

Each :class:`Check` says what was compared and, when it failed, where the evidence lives
(``Store.location``) and the expected and actual values in full. The checks:

* ``manifest``: the attempt's stored ``manifest.json`` exists and hashes to what each
  consumer recorded (a downstream manifest's ``inputs``) and to the stage run's own
  ``manifest.json`` artifact;
* ``file <path>``: every file the manifest lists hashes to its listed sha256;
* ``notebook copy``: the content-addressed source notebook hashes to its recorded sha256;
* ``notebook sha256``: the sources index, the stage run's tag and the manifest agree on it;
* ``inputs``: the stage run's upstream dataset inputs name the attempts the manifest consumed;
* ``spec copy`` / ``lock copy``: the spec (and promoted lock) copies hash to the pipeline
  run's tags;
* ``sources index``: the pipeline run has its ``pipeline/sources.json``;
* ``model notebook sha256`` / ``model version tags``: the model version's tags agree with
  its stage run;
* anything the walk could not find (no lineage, a missing run) is a failed check too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from nbops.audit.lineage import AttemptRecord, Copy, Lineage, RunRecord, dataset_profile
from nbops.provenance import SOURCES_ARTIFACT
from nbops.storage import Store
from nbops.tracking import record, tags

PIPELINE_SCOPE = "pipeline"
MODEL_SCOPE = "model"
_MODEL_TAGS = (tags.PIPELINE, tags.RUN_ID, tags.STAGE, tags.LOCK_SHA256, tags.GIT_COMMIT, tags.GIT_DIRTY)


class Check(BaseModel):
    """One comparison of the audit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str = Field(description="What was checked, e.g. 'train#1 file outputs/model.pkl'.")
    ok: bool = Field(description="Whether it passed.")
    detail: str = Field(description="One sentence; a failure names the location and expected vs actual in full.")
    scope: str = Field("", description="The stage node key ('train#1'), 'pipeline' or 'model' it belongs to.")
    location: str = Field("", description="Where the evidence lives: a store path or URL, or a runs:/ URI.")
    expected: str = Field("", description="The recorded value (a full sha256 for hashes), '' when not applicable.")
    actual: str = Field("", description="The value found, '' when missing or not applicable.")

    @classmethod
    def failed(
        cls, subject: str, detail: str, *, scope: str, location: str = "", expected: str = "", actual: str = ""
    ) -> Check:
        """A check that failed: ``detail`` names what is wrong and where."""
        return cls(
            subject=subject, ok=False, detail=detail, scope=scope, location=location, expected=expected, actual=actual
        )

    @classmethod
    def compared(
        cls, subject: str, expected: str, actual: str, *, scope: str, location: str, same: str, differ: str
    ) -> Check:
        """Passes when ``actual`` is ``expected``; the detail is ``same`` or ``differ`` accordingly."""
        ok = actual == expected
        return cls(
            subject=subject,
            ok=ok,
            detail=same if ok else differ,
            scope=scope,
            location=location,
            expected=expected,
            actual=actual,
        )


def sha256(raw: bytes) -> str:
    """sha256 of bytes, lowercase hex."""
    return hashlib.sha256(raw).hexdigest()


def verify(lineage: Lineage, store: Store) -> list[Check]:
    """Every check of the lineage, in the order the report shows them."""
    scope = MODEL_SCOPE if lineage.subject == "model" else PIPELINE_SCOPE
    checks = [Check.failed(gap.subject, gap.detail, scope=scope, location=gap.location) for gap in lineage.gaps]
    checks.extend(_model(lineage))
    checks.extend(_pipeline(lineage))
    copied: set[str] = set()
    for node in lineage.attempts:
        if node.expects_manifest:
            checks.extend(_attempt(lineage, node, store, copied))
    return checks


def copy_hash(subject: str, copy: Copy, *, scope: str, what: str) -> Check:
    """A content-addressed copy (``what``, in a failure's detail) hashes to the sha256 recorded for it."""
    expected = copy.recorded_sha256
    if copy.raw is None:
        detail = f"missing: {copy.location} (expected sha256 {expected})"
        return Check.failed(subject, detail, scope=scope, location=copy.location, expected=expected)
    actual = sha256(copy.raw)
    return Check.compared(
        subject,
        expected,
        actual,
        scope=scope,
        location=copy.location,
        same=f"{copy.location} hashes to {expected}",
        differ=f"{copy.location} has sha256 {actual}, expected {expected}: {what} was altered",
    )


# -- model version ---------------------------------------------------------------------------


def _model(lineage: Lineage) -> Iterator[Check]:
    model = lineage.model
    root = next((a for a in lineage.attempts if a.role == "model"), None)
    if model is None or root is None or root.run is None:
        return
    run = root.run
    version = f"model version {model.name}/{model.version}"
    recorded = model.tags.get(tags.NOTEBOOK_SHA256, "")
    if recorded:
        actual = run.tag(tags.NOTEBOOK_SHA256)
        yield Check.compared(
            "model notebook sha256",
            recorded,
            actual,
            scope=MODEL_SCOPE,
            location=f"runs:/{run.run_id}",
            same=f"{version} and stage run {run.run_id} record notebook {recorded}",
            differ=f"{version} records notebook sha256 {recorded}, its stage run {run.run_id} records "
            f"{actual or '(none)'}",
        )
    if any(model.tags.get(name) for name in _MODEL_TAGS):
        differing = [
            f"{name}: version {model.tags[name]!r}, stage run {run.tag(name)!r}"
            for name in _MODEL_TAGS
            if model.tags.get(name) and model.tags[name] != run.tag(name)
        ]
        yield Check(
            subject="model version tags",
            ok=not differing,
            detail=f"{version} tags disagree with stage run {run.run_id}: " + "; ".join(differing)
            if differing
            else f"{version} tags agree with stage run {run.run_id}",
            scope=MODEL_SCOPE,
            location=f"runs:/{run.run_id}",
        )


# -- pipeline run --------------------------------------------------------------------------


def _pipeline(lineage: Lineage) -> Iterator[Check]:
    parent = lineage.parent
    if parent is None:
        return
    yield Check(
        subject="sources index",
        ok=lineage.sources is not None,
        detail=f"{SOURCES_ARTIFACT} lists the spec and {len(lineage.sources.notebooks)} notebook(s)"
        if lineage.sources is not None
        else f"{lineage.sources_note}: the sources the run used are not listed "
        "(copies were looked up by the hashes the runs record).",
        scope=PIPELINE_SCOPE,
        location=f"runs:/{parent.run_id}/{SOURCES_ARTIFACT}",
    )
    yield _source_copy("spec copy", lineage.spec, parent, tags.SPEC_SHA256)
    if lineage.lock is not None or parent.tag(tags.LOCK_SHA256):
        yield _source_copy("lock copy", lineage.lock, parent, tags.LOCK_SHA256)


def _source_copy(subject: str, copy: Copy | None, parent: RunRecord, tag: str) -> Check:
    """A source copy hashes to its recorded sha256, which is the pipeline run's tag."""
    recorded_tag = parent.tag(tag)
    if copy is None:
        return Check.failed(
            subject,
            f"pipeline run {parent.run_id} records no sha256 of it ({recorded_tag or 'no tag'}), "
            "so its copy cannot be found",
            scope=PIPELINE_SCOPE,
            location=f"runs:/{parent.run_id}",
            expected=recorded_tag,
        )
    check = copy_hash(subject, copy, scope=PIPELINE_SCOPE, what="the copy")
    if check.ok and recorded_tag and recorded_tag != copy.recorded_sha256:
        return Check.failed(
            subject,
            f"pipeline run {parent.run_id} records sha256 {recorded_tag}, the sources index "
            f"{copy.recorded_sha256} (the copy at {copy.location} hashes to the latter)",
            scope=PIPELINE_SCOPE,
            location=copy.location,
            expected=recorded_tag,
            actual=check.actual,
        )
    return check


# -- stage attempts --------------------------------------------------------------------------


def _attempt(lineage: Lineage, node: AttemptRecord, store: Store, copied: set[str]) -> Iterator[Check]:
    key = node.key
    if node.run is None and node.run_note:
        yield Check.failed(f"{key} stage run", f"{key}: {node.run_note}", scope=key)
    yield from _manifest(node)
    yield from _files(node, store)
    yield from _notebook(lineage, node, copied)
    yield from _inputs(node)


def _files(node: AttemptRecord, store: Store) -> Iterator[Check]:
    """Every file the manifest lists hashes to its listed sha256."""
    for listed in node.manifest.files if node.manifest is not None else ():
        rel = f"{node.rel}/{listed.path}"
        where = store.location(rel)
        actual = store.digest(rel)
        yield Check.compared(
            f"{node.key} file {listed.path}",
            listed.sha256,
            actual or "",
            scope=node.key,
            location=where,
            same=f"{where} hashes to {listed.sha256}",
            differ=f"missing: {where} (the manifest lists sha256 {listed.sha256}, {listed.size} bytes)"
            if actual is None
            else f"{where} has sha256 {actual}, the manifest lists {listed.sha256}: the file was altered",
        )


def _manifest(node: AttemptRecord) -> Iterator[Check]:
    """The stored manifest exists, parses, and hashes to what its consumers and its stage run recorded."""
    key = node.key
    subject = f"{key} manifest"
    where = node.manifest_location
    if not node.rel:
        yield Check.failed(subject, f"{key}: {node.manifest_error}", scope=key)
        return
    if node.stored_manifest is None:
        expected = node.consumers[0].manifest_sha256 if node.consumers else ""
        by = f"; {node.consumers[0].key} recorded sha256 {expected}" if expected else ""
        detail = f"missing: {where} (status {node.status}): the attempt's proof of completion is gone{by}"
        yield Check.failed(subject, detail, scope=key, location=where, expected=expected)
        return
    actual = sha256(node.stored_manifest)
    if node.manifest_error:
        yield Check.failed(subject, node.manifest_error, scope=key, location=where, actual=actual)
    for consumer in node.consumers:
        yield Check.compared(
            f"{subject} (consumed by {consumer.key})",
            consumer.manifest_sha256,
            actual,
            scope=key,
            location=where,
            same=f"{where} hashes to {actual}, as {consumer.key} recorded",
            differ=f"{where} has sha256 {actual}, but {consumer.key} recorded {consumer.manifest_sha256}: "
            "the manifest was altered or replaced",
        )
    if node.run is not None:
        yield _manifest_record(node, node.run, actual)


def _manifest_record(node: AttemptRecord, run: RunRecord, actual: str) -> Check:
    """The stored manifest (sha256 ``actual``) against the stage run's ``manifest.json`` artifact."""
    subject, where = f"{node.key} manifest (MLflow record)", node.manifest_location
    if node.recorded_manifest is None:
        detail = f"stage run {run.run_id} has no manifest.json artifact to compare {where} with"
        return Check.failed(subject, detail, scope=node.key, location=where, actual=actual)
    record = f"runs:/{run.run_id}/manifest.json"
    recorded = sha256(node.recorded_manifest)
    return Check.compared(
        subject,
        recorded,
        actual,
        scope=node.key,
        location=where,
        same=f"{where} hashes to {actual}, as {record} does",
        differ=f"{where} has sha256 {actual}, but the stage run's copy {record} hashes to {recorded}: "
        "the manifest was altered or replaced",
    )


def _notebook(lineage: Lineage, node: AttemptRecord, copied: set[str]) -> Iterator[Check]:
    """The notebook copy hashes to its sha256 (once per copy), and every record names that sha256."""
    key = node.key
    copy = lineage.notebooks.get(node.spec_stage)
    if copy is None:
        detail = f"{key}: no sha256 of the stage's notebook is recorded, so its source cannot be found"
        yield Check.failed(f"{key} notebook copy", detail, scope=key)
        return
    if copy.rel not in copied:
        copied.add(copy.rel)
        yield copy_hash(f"{key} notebook copy", copy, scope=key, what="the source notebook copy")
    values = {
        "the sources index": copy.recorded_sha256 if copy.indexed else "",
        "the stage run": node.run.tag(tags.NOTEBOOK_SHA256) if node.run is not None else "",
        "the manifest": node.manifest.notebook.sha256 if node.manifest is not None else "",
    }
    recorded = {k: v for k, v in values.items() if v}
    distinct = sorted(set(recorded.values()))
    first = next(iter(recorded.values()), "")
    if not recorded:
        detail = "no notebook sha256 recorded"
    elif len(distinct) == 1:
        detail = f"{', '.join(recorded)} record {first}"
    else:
        detail = "notebook sha256 differs: " + "; ".join(f"{k} records {v}" for k, v in recorded.items())
    yield Check(
        subject=f"{key} notebook sha256",
        ok=len(distinct) == 1,
        detail=detail,
        scope=key,
        location=copy.location,
        expected=copy.recorded_sha256,
        actual=first if len(distinct) <= 1 else ";".join(distinct),
    )


def _inputs(node: AttemptRecord) -> Iterator[Check]:
    """The stage run's upstream dataset inputs against the manifest's ``inputs``."""
    if node.run is None or node.manifest is None:
        return
    datasets = [d for d in node.run.datasets if d.context == record.UPSTREAM]
    if not datasets:
        return
    problems: list[str] = []
    logged: set[tuple[str, int, str]] = set()
    for dataset in datasets:
        profile = dataset_profile(dataset)
        full = str(profile.get("manifest_sha256", ""))
        attempt = profile.get("attempt")
        if not full.startswith(dataset.digest) or not dataset.digest:
            problems.append(f"dataset '{dataset.name}' has digest {dataset.digest!r}, its profile sha256 {full!r}")
        logged.add((str(profile.get("stage", dataset.name)), attempt if isinstance(attempt, int) else -1, full))
    consumed = {(i.stage, i.attempt, i.manifest_sha256) for i in node.manifest.inputs}
    for stage, attempt, full in sorted(consumed - logged):
        problems.append(f"the manifest consumed {stage}#{attempt} ({full}), the stage run logs no such input")
    for stage, attempt, full in sorted(logged - consumed):
        problems.append(f"the stage run logs input {stage}#{attempt} ({full}), the manifest consumed no such attempt")
    location = f"runs:/{node.run.run_id}"
    subject = f"{node.key} inputs (MLflow record)"
    if problems:
        detail = "; ".join(problems)
        yield Check.failed(
            subject, detail, scope=node.key, location=location, expected=_listed(consumed), actual=_listed(logged)
        )
    else:
        detail = f"the stage run's dataset inputs name the {len(consumed)} attempt(s) the manifest consumed"
        yield Check(subject=subject, ok=True, detail=detail, scope=node.key, location=location)


def _listed(attempts: set[tuple[str, int, str]]) -> str:
    """``["stage#attempt:sha256", ...]`` as JSON, sorted."""
    return json.dumps(sorted(f"{s}#{a}:{h}" for s, a, h in attempts))


__all__ = ["Check", "copy_hash", "sha256", "verify"]
