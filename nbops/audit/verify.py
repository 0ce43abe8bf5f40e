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

from nbops.audit.walk import UPSTREAM, AttemptRecord, Copy, Lineage, RunRecord, dataset_profile
from nbops.provenance import SOURCES_ARTIFACT
from nbops.storage import Store
from nbops.tracking import tags

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


def sha256(raw: bytes) -> str:
    """sha256 of bytes, lowercase hex."""
    return hashlib.sha256(raw).hexdigest()


def verify(lineage: Lineage, store: Store) -> list[Check]:
    """Every check of the lineage, in the order the report shows them."""
    scope = MODEL_SCOPE if lineage.subject == "model" else PIPELINE_SCOPE
    checks = [
        Check(subject=gap.subject, ok=False, detail=gap.detail, scope=scope, location=gap.location)
        for gap in lineage.gaps
    ]
    checks.extend(_model(lineage))
    checks.extend(_pipeline(lineage))
    copied: set[str] = set()
    for node in lineage.attempts:
        if node.expects_manifest:
            checks.extend(_attempt(lineage, node, store, copied))
    return checks


# -- model version ---------------------------------------------------------------------------


def _model(lineage: Lineage) -> Iterator[Check]:
    model = lineage.model
    root = next((a for a in lineage.attempts if a.role == "model"), None)
    if model is None or root is None or root.run is None:
        return
    run = root.run
    recorded = model.tags.get(tags.NOTEBOOK_SHA256, "")
    if recorded:
        actual = run.tag(tags.NOTEBOOK_SHA256)
        yield Check(
            subject="model notebook sha256",
            ok=recorded == actual,
            detail=(
                f"model version {model.name}/{model.version} and stage run {run.run_id} record notebook {recorded}"
                if recorded == actual
                else f"model version {model.name}/{model.version} records notebook sha256 {recorded}, its stage "
                f"run {run.run_id} records {actual or '(none)'}"
            ),
            scope=MODEL_SCOPE,
            location=f"runs:/{run.run_id}",
            expected=recorded,
            actual=actual,
        )
    differing = [
        f"{name}: version {model.tags[name]!r}, stage run {run.tag(name)!r}"
        for name in _MODEL_TAGS
        if model.tags.get(name) and model.tags[name] != run.tag(name)
    ]
    if any(model.tags.get(name) for name in _MODEL_TAGS):
        yield Check(
            subject="model version tags",
            ok=not differing,
            detail=(
                f"model version {model.name}/{model.version} tags disagree with stage run {run.run_id}: "
                + "; ".join(differing)
                if differing
                else f"model version {model.name}/{model.version} tags agree with stage run {run.run_id}"
            ),
            scope=MODEL_SCOPE,
            location=f"runs:/{run.run_id}",
        )


# -- pipeline run --------------------------------------------------------------------------


def _pipeline(lineage: Lineage) -> Iterator[Check]:
    parent = lineage.parent
    if parent is None:
        return
    where = f"runs:/{parent.run_id}/{SOURCES_ARTIFACT}"
    if lineage.sources is not None:
        yield Check(
            subject="sources index",
            ok=True,
            detail=f"{SOURCES_ARTIFACT} lists the spec and {len(lineage.sources.notebooks)} notebook(s)",
            scope=PIPELINE_SCOPE,
            location=where,
        )
    else:
        yield Check(
            subject="sources index",
            ok=False,
            detail=f"{lineage.sources_note}: the sources the run used are not listed "
            "(copies were looked up by the hashes the runs record).",
            scope=PIPELINE_SCOPE,
            location=where,
        )
    yield _copy_check("spec copy", lineage.spec, parent, tags.SPEC_SHA256)
    if lineage.lock is not None or parent.tag(tags.LOCK_SHA256):
        yield _copy_check("lock copy", lineage.lock, parent, tags.LOCK_SHA256)


def _copy_check(subject: str, copy: Copy | None, parent: RunRecord, tag: str) -> Check:
    """A source copy hashes to its recorded sha256, which is the pipeline run's tag."""
    recorded_tag = parent.tag(tag)
    if copy is None:
        return Check(
            subject=subject,
            ok=False,
            detail=f"pipeline run {parent.run_id} records no sha256 of it ({recorded_tag or 'no tag'}), "
            "so its copy cannot be found",
            scope=PIPELINE_SCOPE,
            location=f"runs:/{parent.run_id}",
            expected=recorded_tag,
        )
    expected = copy.recorded_sha256
    if copy.raw is None:
        return Check(
            subject=subject,
            ok=False,
            detail=f"missing: {copy.location} (expected sha256 {expected})",
            scope=PIPELINE_SCOPE,
            location=copy.location,
            expected=expected,
        )
    actual = sha256(copy.raw)
    if actual != expected:
        return Check(
            subject=subject,
            ok=False,
            detail=f"{copy.location} has sha256 {actual}, expected {expected}: the copy was altered",
            scope=PIPELINE_SCOPE,
            location=copy.location,
            expected=expected,
            actual=actual,
        )
    if recorded_tag and recorded_tag != expected:
        return Check(
            subject=subject,
            ok=False,
            detail=f"pipeline run {parent.run_id} records sha256 {recorded_tag}, the sources index {expected} "
            f"(the copy at {copy.location} hashes to the latter)",
            scope=PIPELINE_SCOPE,
            location=copy.location,
            expected=recorded_tag,
            actual=actual,
        )
    return Check(
        subject=subject,
        ok=True,
        detail=f"{copy.location} hashes to {expected}",
        scope=PIPELINE_SCOPE,
        location=copy.location,
        expected=expected,
        actual=actual,
    )


# -- stage attempts --------------------------------------------------------------------------


def _attempt(lineage: Lineage, node: AttemptRecord, store: Store, copied: set[str]) -> Iterator[Check]:
    key = node.key
    if node.run is None and node.run_note:
        yield Check(subject=f"{key} stage run", ok=False, detail=f"{key}: {node.run_note}", scope=key)
    yield from _manifest(node)
    manifest = node.manifest
    for listed in manifest.files if manifest is not None else ():
        rel = f"{node.rel}/{listed.path}"
        where = store.location(rel)
        actual = store.digest(rel)
        if actual is None:
            detail = f"missing: {where} (the manifest lists sha256 {listed.sha256}, {listed.size} bytes)"
        elif actual != listed.sha256:
            detail = f"{where} has sha256 {actual}, the manifest lists {listed.sha256}: the file was altered"
        else:
            detail = f"{where} hashes to {listed.sha256}"
        yield Check(
            subject=f"{key} file {listed.path}",
            ok=actual == listed.sha256,
            detail=detail,
            scope=key,
            location=where,
            expected=listed.sha256,
            actual=actual or "",
        )
    yield from _notebook(lineage, node, copied)
    yield from _inputs(node)


def _manifest(node: AttemptRecord) -> Iterator[Check]:
    key = node.key
    subject = f"{key} manifest"
    where = node.manifest_location
    if not node.rel:
        yield Check(subject=subject, ok=False, detail=f"{key}: {node.manifest_error}", scope=key)
        return
    expected = node.consumers[0].manifest_sha256 if node.consumers else ""
    if node.stored_manifest is None:
        by = f"; {node.consumers[0].key} recorded sha256 {expected}" if expected else ""
        yield Check(
            subject=subject,
            ok=False,
            detail=f"missing: {where} (status {node.status}): the attempt's proof of completion is gone{by}",
            scope=key,
            location=where,
            expected=expected,
        )
        return
    actual = sha256(node.stored_manifest)
    if node.manifest_error:
        yield Check(
            subject=subject,
            ok=False,
            detail=node.manifest_error,
            scope=key,
            location=where,
            actual=actual,
        )
    for consumer in node.consumers:
        ok = actual == consumer.manifest_sha256
        yield Check(
            subject=f"{subject} (consumed by {consumer.key})",
            ok=ok,
            detail=(
                f"{where} hashes to {actual}, as {consumer.key} recorded"
                if ok
                else f"{where} has sha256 {actual}, but {consumer.key} recorded {consumer.manifest_sha256}: "
                "the manifest was altered or replaced"
            ),
            scope=key,
            location=where,
            expected=consumer.manifest_sha256,
            actual=actual,
        )
    if node.run is not None:
        record = f"runs:/{node.run.run_id}/manifest.json"
        if node.recorded_manifest is None:
            yield Check(
                subject=f"{subject} (MLflow record)",
                ok=False,
                detail=f"stage run {node.run.run_id} has no manifest.json artifact to compare {where} with",
                scope=key,
                location=where,
                actual=actual,
            )
        else:
            recorded = sha256(node.recorded_manifest)
            ok = recorded == actual
            yield Check(
                subject=f"{subject} (MLflow record)",
                ok=ok,
                detail=(
                    f"{where} hashes to {actual}, as {record} does"
                    if ok
                    else f"{where} has sha256 {actual}, but the stage run's copy {record} hashes to {recorded}: "
                    "the manifest was altered or replaced"
                ),
                scope=key,
                location=where,
                expected=recorded,
                actual=actual,
            )


def _notebook(lineage: Lineage, node: AttemptRecord, copied: set[str]) -> Iterator[Check]:
    key = node.key
    copy = lineage.notebooks.get(node.stage)
    if copy is None:
        yield Check(
            subject=f"{key} notebook copy",
            ok=False,
            detail=f"{key}: no sha256 of the stage's notebook is recorded, so its source cannot be found",
            scope=key,
        )
        return
    if copy.rel not in copied:
        copied.add(copy.rel)
        if copy.raw is None:
            yield Check(
                subject=f"{key} notebook copy",
                ok=False,
                detail=f"missing: {copy.location} (expected sha256 {copy.recorded_sha256})",
                scope=key,
                location=copy.location,
                expected=copy.recorded_sha256,
            )
        else:
            actual = sha256(copy.raw)
            ok = actual == copy.recorded_sha256
            yield Check(
                subject=f"{key} notebook copy",
                ok=ok,
                detail=(
                    f"{copy.location} hashes to {actual}"
                    if ok
                    else f"{copy.location} has sha256 {actual}, expected {copy.recorded_sha256}: "
                    "the source notebook copy was altered"
                ),
                scope=key,
                location=copy.location,
                expected=copy.recorded_sha256,
                actual=actual,
            )
    values = {
        "the sources index": copy.recorded_sha256 if copy.indexed else "",
        "the stage run": node.run.tag(tags.NOTEBOOK_SHA256) if node.run is not None else "",
        "the manifest": node.manifest.notebook.sha256 if node.manifest is not None else "",
    }
    recorded = {k: v for k, v in values.items() if v}
    agree = len(set(recorded.values())) <= 1
    first = next(iter(recorded.values()), "")
    yield Check(
        subject=f"{key} notebook sha256",
        ok=agree and bool(recorded),
        detail=(
            f"{', '.join(recorded)} record {first}"
            if agree and recorded
            else "notebook sha256 differs: " + "; ".join(f"{k} records {v}" for k, v in recorded.items())
            if recorded
            else "no notebook sha256 recorded"
        ),
        scope=key,
        location=copy.location,
        expected=copy.recorded_sha256,
        actual=";".join(sorted(set(recorded.values()))) if not agree else first,
    )


def _inputs(node: AttemptRecord) -> Iterator[Check]:
    """The stage run's upstream dataset inputs against the manifest's ``inputs``."""
    if node.run is None or node.manifest is None:
        return
    datasets = [d for d in node.run.datasets if d.context == UPSTREAM]
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
    yield Check(
        subject=f"{node.key} inputs (MLflow record)",
        ok=not problems,
        detail="; ".join(problems)
        if problems
        else f"the stage run's dataset inputs name the {len(consumed)} attempt(s) the manifest consumed",
        scope=node.key,
        location=f"runs:/{node.run.run_id}",
        expected=json.dumps(sorted(f"{s}#{a}:{h}" for s, a, h in consumed)) if problems else "",
        actual=json.dumps(sorted(f"{s}#{a}:{h}" for s, a, h in logged)) if problems else "",
    )


__all__ = ["Check", "sha256", "verify"]
