"""The report document: ``ok``, the versioned JSON, a real report in all three forms."""

from __future__ import annotations

import json

import pytest

from nbops.audit import audit_model
from nbops.audit.report import SCHEMA
from tests.audit.records import MODEL, Records
from tests.audit.samples import SHA_A, SHA_B, sample


@pytest.mark.unit
def test_ok_is_every_check_passing() -> None:
    assert sample(failing=False).ok
    assert not sample(failing=True).ok


@pytest.mark.unit
def test_json_is_one_versioned_document() -> None:
    document = json.loads(sample(failing=True).to_json())
    assert list(document) == ["schema", "subject", "pipeline_run", "stages", "checks", "ok"]
    assert document["schema"] == SCHEMA == "nbops.audit/1"
    assert document["ok"] is False
    assert document["subject"]["model"]["aliases"] == ["champion"]
    train = document["stages"][1]
    assert train["parameters"] == [{"name": "lr", "value": 0.5, "source": "override", "default": 0.1, "spec": None}]
    assert train["inputs"][0]["manifest_sha256"] == SHA_A
    [bad] = [c for c in document["checks"] if not c["ok"]]
    assert (bad["expected"], bad["actual"], bad["scope"]) == (SHA_B, SHA_A, "train#1")


@pytest.mark.integration
def test_a_real_report_renders_in_all_three_forms(records: Records) -> None:
    report = audit_model(f"{MODEL}@champion")
    document = json.loads(report.to_json())
    assert document["schema"] == SCHEMA and document["ok"] is True
    assert document["subject"]["kind"] == "model"
    assert document["pipeline_run"]["mlflow_run_id"] == records.parent_run
    assert [s["key"] for s in document["stages"]] == ["prep#2", "train#1"]
    assert all(c["ok"] for c in document["checks"])
    page = report.to_html()
    assert "<script" not in page and f"{len(report.checks)} checks, all passed" in page
    text = report.to_text()
    assert records.parent_run in text and records.train_run in text
