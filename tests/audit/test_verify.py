"""Verification: a clean lineage passes; each altered or missing piece of evidence fails, named."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from mlflow.entities import Dataset, DatasetInput, InputTag

from nbops.audit import AuditReport, audit_model, audit_run
from nbops.lock import lock_rel
from nbops.storage.manifest import parse_manifest
from nbops.tracking import tags
from nbops.tracking.store import open_client
from tests.audit.records import MODEL, RUN_ID, Records

pytestmark = pytest.mark.integration


def failed(report: AuditReport) -> dict[str, str]:
    return {c.subject: c.detail for c in report.checks if not c.ok}


def assert_named(report: AuditReport, subject: str, location: str) -> None:
    """The failure is in the report, names the location, in the text and in the JSON checks."""
    assert not report.ok
    assert subject in failed(report), report.to_text()
    assert location in failed(report)[subject]
    text = report.to_text()
    assert location in text and f"{subject}:" in text
    document = json.loads(report.to_json())
    [check] = [c for c in document["checks"] if c["subject"] == subject]
    assert check["ok"] is False and check["location"] == location and location in check["detail"]


def test_a_clean_lineage_passes_every_check(records: Records) -> None:
    report = audit_model(f"{MODEL}@champion")
    assert report.ok, report.to_text()
    subjects = {c.subject for c in report.checks}
    assert {
        "model notebook sha256",
        "model version tags",
        "sources index",
        "spec copy",
        "prep#2 manifest (consumed by train#1)",
        "prep#2 manifest (MLflow record)",
        "prep#2 file outputs/data.csv",
        "prep#2 notebook copy",
        "prep#2 notebook sha256",
        "train#1 manifest (MLflow record)",
        "train#1 file outputs/model.pkl",
        "train#1 notebook copy",
        "train#1 notebook sha256",
        "train#1 inputs (MLflow record)",
    } <= subjects
    assert report.to_text().rstrip().endswith(f"audit: {len(report.checks)} checks, all passed")


def test_an_altered_upstream_output_fails_naming_the_file(altered: Records) -> None:
    path = altered.attempt_dir("prep", 2) / "outputs" / "data.csv"
    path.write_bytes(b"a,b\n1,3\n")
    report = audit_model(f"{MODEL}/1")
    location = altered.location(altered.attempt_rel("prep", 2) + "/outputs/data.csv")
    assert_named(report, "prep#2 file outputs/data.csv", location)
    assert len(failed(report)) == 1
    assert "the file was altered" in failed(report)["prep#2 file outputs/data.csv"]


def test_a_deleted_output_fails_as_missing(altered: Records) -> None:
    (altered.attempt_dir("train", 1) / "outputs" / "model.pkl").unlink()
    report = audit_run(RUN_ID)
    location = altered.location(altered.attempt_rel("train", 1) + "/outputs/model.pkl")
    assert_named(report, "train#1 file outputs/model.pkl", location)
    assert failed(report)["train#1 file outputs/model.pkl"].startswith(f"missing: {location}")


def test_an_altered_source_notebook_copy_fails(altered: Records) -> None:
    copy = altered.artifacts / altered.notebooks["prep"]
    copy.write_bytes(copy.read_bytes().replace(b"rows = 10", b"rows = 99"))
    report = audit_model(f"{MODEL}/1")
    assert_named(report, "prep#2 notebook copy", altered.location(altered.notebooks["prep"]))
    assert len(failed(report)) == 1


def test_an_altered_upstream_manifest_fails_against_its_consumer_and_its_record(altered: Records) -> None:
    path = altered.attempt_dir("prep", 2) / "manifest.json"
    manifest = parse_manifest(path.read_bytes(), str(path))
    path.write_bytes(manifest.model_copy(update={"metrics": {"rows_out": 1000.0}}).to_bytes())
    report = audit_model(f"{MODEL}/1")
    location = altered.location(altered.attempt_rel("prep", 2)) + "/manifest.json"
    assert_named(report, "prep#2 manifest (consumed by train#1)", location)
    assert_named(report, "prep#2 manifest (MLflow record)", location)
    detail = failed(report)["prep#2 manifest (consumed by train#1)"]
    assert manifest.sha256 in detail  # the full hash the consumer recorded


def test_a_deleted_upstream_manifest_fails_as_missing(altered: Records) -> None:
    (altered.attempt_dir("prep", 2) / "manifest.json").unlink()
    report = audit_model(f"{MODEL}/1")
    location = altered.location(altered.attempt_rel("prep", 2)) + "/manifest.json"
    assert_named(report, "prep#2 manifest", location)
    assert "missing" in failed(report)["prep#2 manifest"]


def test_an_altered_spec_copy_fails(altered: Records) -> None:
    (altered.artifacts / altered.spec_rel).write_text("name: diagnosis\nstages: {}\n")
    report = audit_run(RUN_ID)
    assert_named(report, "spec copy", altered.location(altered.spec_rel))


def test_an_altered_lock_copy_fails(altered: Records) -> None:
    raw = b'{"lock_version": 1, "spec": {"name": "diagnosis"}}\n'
    sha = hashlib.sha256(raw).hexdigest()
    (altered.artifacts / lock_rel(sha)).parent.mkdir(parents=True, exist_ok=True)
    (altered.artifacts / lock_rel(sha)).write_bytes(raw)
    open_client(altered.uri).set_tag(altered.parent_run, tags.LOCK_SHA256, sha)  # as a promoted run records it
    assert "lock copy" not in failed(audit_run(RUN_ID))
    (altered.artifacts / lock_rel(sha)).write_bytes(raw.replace(b"1", b"2", 1))
    assert_named(audit_run(RUN_ID), "lock copy", altered.location(lock_rel(sha)))


def test_a_run_without_sources_index_reports_it_and_still_verifies(altered: Records) -> None:
    (altered.run_artifacts(altered.parent_run) / "pipeline" / "sources.json").unlink()
    report = audit_model(f"{MODEL}/1")
    assert set(failed(report)) == {"sources index"}
    assert "has no pipeline/sources.json" in failed(report)["sources index"]
    subjects = {c.subject for c in report.checks if c.ok}
    assert {"spec copy", "prep#2 notebook copy", "train#1 notebook copy"} <= subjects  # found by hash
    copy = altered.artifacts / altered.notebooks["train"]
    copy.unlink()
    report = audit_model(f"{MODEL}/1")
    assert_named(report, "train#1 notebook copy", altered.location(altered.notebooks["train"]))


def test_a_version_recording_another_notebook_fails(altered: Records) -> None:
    client = open_client(altered.uri)
    client.set_model_version_tag(MODEL, "1", tags.NOTEBOOK_SHA256, "0" * 64)
    report = audit_model(f"{MODEL}/1")
    assert set(failed(report)) == {"model notebook sha256"}
    assert "0" * 64 in failed(report)["model notebook sha256"]


def test_a_stage_run_logging_other_inputs_fails(altered: Records) -> None:
    client = open_client(altered.uri)
    dataset = Dataset(
        name="prep",
        digest="f" * 32,
        source_type="local",
        source=json.dumps({"uri": "elsewhere"}),
        profile=json.dumps({"manifest_sha256": "f" * 64, "stage": "prep", "attempt": 1}),
    )
    client.log_inputs(
        altered.train_run, datasets=[DatasetInput(dataset, tags=[InputTag(tags.DATASET_CONTEXT, "upstream")])]
    )
    report = audit_model(f"{MODEL}/1")
    assert set(failed(report)) == {"train#1 inputs (MLflow record)"}
    assert "prep#1" in failed(report)["train#1 inputs (MLflow record)"]


def test_a_removed_attempt_fails_every_piece_of_it(altered: Records) -> None:
    shutil.rmtree(altered.attempt_dir("prep", 2))
    report = audit_run(RUN_ID)
    assert "prep#2 manifest" in failed(report)
    assert not any(s.key == "prep#2" and s.ok for s in report.stages)
