"""The checks of what an auditor trusts beyond the store's own files (DESIGN §15): the model's files
and signature, the copies the MLflow UI shows, the carried helper files, the aliases.

* ``model files``: every file of each model version an attempt sealed, read again from MLflow's
  artifact store, hashes as sealed; nothing was added; the version's digest tag agrees;
* ``model signature``: the signature beside the files is the one sealed and, with
  ``$NBOPS_VERIFY_KEY``, verifies for the files under that public key;
* ``model sealed``: the audited version is among the models its stage's manifest sealed;
* ``alias``: ``champion`` points to a version a gate promoted, ``challenger`` to one a gate judged;
* ``MLflow copy``: the stage run's ``output.ipynb`` and ``output.html`` hash as the manifest lists;
* ``carried``: the store's copy of each helper file hashes to its sha256.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from nbops import modelseal
from nbops.audit.lineage import AttemptRecord, Lineage, ModelEvidence
from nbops.audit.verify import MODEL_SCOPE, Check, copy_hash, sha256
from nbops.tracking import tags
from nbops.tracking.gate import CHALLENGER, CHAMPION

PROMOTED = "promoted"
"""The gate decision (``nbops.gate.decision``) that moves ``champion``."""


def trust_checks(lineage: Lineage, public_key: Path | None) -> Iterator[Check]:
    """Every check of this module, in report order: the audited model first, then each attempt's."""
    yield from _subject(lineage)
    copied: set[str] = set()
    for node in lineage.attempts:
        if node.manifest is None or not node.expects_manifest:
            continue
        yield from _recorded_copies(node)
        for listed, copy in zip(node.manifest.carried, node.carried, strict=True):
            if copy.rel not in copied:
                copied.add(copy.rel)
                subject = f"{node.key} carried {listed.path}"
                yield copy_hash(subject, copy, scope=node.key, what=f"the copy of helper file {listed.path}")
        for evidence in node.models:
            yield from _model(node.key, evidence, public_key)


def _subject(lineage: Lineage) -> Iterator[Check]:
    """The audited version is sealed by its stage; its aliases were moved by a gate."""
    model = lineage.model
    root = next((a for a in lineage.attempts if a.role == "model"), None)
    if model is None or root is None or root.manifest is None:
        return
    ref = f"{model.name}/{model.version}"
    sealed = any(m.name == model.name and m.version == model.version for m in root.manifest.models)
    if sealed:
        yield Check(
            subject="model sealed",
            ok=True,
            detail=f"{root.key}'s manifest seals model version {ref}",
            scope=MODEL_SCOPE,
        )
    elif root.manifest.schema_version >= 4:  # older manifests predate sealing: the report notes it
        yield Check.failed(
            "model sealed",
            f"model version {ref} is not among the models {root.key}'s manifest seals "
            f"({', '.join(m.ref for m in root.manifest.models) or 'none'}): its files cannot be vouched for",
            scope=MODEL_SCOPE,
            location=root.manifest_location,
        )
    for alias in model.aliases:
        decision = model.tags.get(tags.GATE_DECISION, "")
        if alias == CHAMPION and decision != PROMOTED:
            detail = (
                f"alias {CHAMPION} points to model version {ref}, which no gate promoted (its gate decision: "
                f"{decision or 'none'}): the alias was moved outside the gate"
            )
            yield Check.failed(f"alias {alias}", detail, scope=MODEL_SCOPE, expected=PROMOTED, actual=decision)
        elif alias == CHALLENGER and not decision:
            detail = f"alias {CHALLENGER} points to model version {ref}, which no gate judged: moved outside the gate"
            yield Check.failed(f"alias {alias}", detail, scope=MODEL_SCOPE)
        elif alias in (CHAMPION, CHALLENGER):
            detail = f"alias {alias} points to model version {ref}, which the gate judged '{decision}'"
            yield Check(subject=f"alias {alias}", ok=True, detail=detail, scope=MODEL_SCOPE)


def _recorded_copies(node: AttemptRecord) -> Iterator[Check]:
    """The stage run's copies of the files the MLflow UI shows, against the manifest."""
    listed = {f.path: f.sha256 for f in node.manifest.files} if node.manifest is not None else {}
    for name, raw in node.recorded_files.items():
        where = f"runs:/{node.run.run_id}/{name}" if node.run is not None else name
        subject, expected = f"{node.key} MLflow copy {name}", listed.get(name, "")
        if raw is None:
            detail = f"missing: {where} (the manifest lists sha256 {expected})"
            yield Check.failed(subject, detail, scope=node.key, location=where, expected=expected)
            continue
        actual = sha256(raw)
        yield Check.compared(
            subject,
            expected,
            actual,
            scope=node.key,
            location=where,
            same=f"{where} hashes to {expected}, as the manifest lists",
            differ=f"{where} has sha256 {actual}, the manifest lists {expected}: the copy the MLflow UI shows "
            "was altered",
        )


def _model(scope: str, evidence: ModelEvidence, public_key: Path | None) -> Iterator[Check]:
    """A sealed model version's files, digest tag and signature."""
    sealed = evidence.sealed
    ref = f"model version {sealed.ref}"
    if evidence.directory is None:
        detail = f"{ref}: its files cannot be read from MLflow's artifact store ({evidence.error})"
        yield Check.failed(f"{scope} model {sealed.ref} files", detail, scope=scope, location=sealed.source)
        return
    findings = modelseal.check_files(sealed, evidence.directory)
    yield from _failed(f"{scope} model {sealed.ref}", findings, scope, sealed.source)
    if not findings:
        detail = f"{ref}: its {len(sealed.files)} file(s) at {sealed.source} hash as sealed ({sealed.sha256})"
        yield Check(subject=f"{scope} model {sealed.ref} files", ok=True, detail=detail, scope=scope)
    tagged = evidence.tags.get(tags.MODEL_SHA256, "")
    yield Check.compared(
        f"{scope} model {sealed.ref} digest tag",
        sealed.sha256,
        tagged,
        scope=scope,
        location=sealed.source,
        same=f"{ref} is tagged {tags.MODEL_SHA256}={sealed.sha256}, as sealed",
        differ=f"{ref} is tagged {tags.MODEL_SHA256}={tagged or '(none)'}, the manifest seals {sealed.sha256}",
    )
    yield from _signature(scope, evidence, public_key)


def _failed(prefix: str, findings: list[modelseal.Finding], scope: str, location: str) -> Iterator[Check]:
    """A failed check per finding, named ``<prefix> <finding.subject>``."""
    for finding in findings:
        yield Check.failed(
            f"{prefix} {finding.subject}",
            finding.detail,
            scope=scope,
            location=location,
            expected=finding.expected,
            actual=finding.actual,
        )


def _signature(scope: str, evidence: ModelEvidence, public_key: Path | None) -> Iterator[Check]:
    sealed, subject = evidence.sealed, f"{scope} model {evidence.sealed.ref} signature"
    if sealed.signature_sha256 is None or evidence.directory is None:
        return
    findings = modelseal.check_signature(sealed, evidence.directory, public_key)
    yield from _failed(f"{scope} model {sealed.ref}", findings, scope, sealed.source)
    if not findings:
        how = (
            f"verifies for its files with the public key {public_key}"
            if public_key is not None
            else "is the one sealed (set NBOPS_VERIFY_KEY to verify it against the public key)"
        )
        detail = f"model version {sealed.ref}: its signature {modelseal.SIGNATURE} {how}"
        yield Check(subject=subject, ok=True, detail=detail, scope=scope, location=sealed.source)


__all__ = ["trust_checks"]
