"""The walk: model version -> stage run -> pipeline run -> manifests -> upstream attempts."""

from __future__ import annotations

import pytest

from nbops.audit import audit_model, audit_run
from nbops.audit.refs import parse_ref
from nbops.audit.walk import Walker
from nbops.errors import InputError
from nbops.tracking.store import open_client
from tests.audit.records import FAILED_RUN_ID, MODEL, PIPELINE, RUN_ID, Records

pytestmark = pytest.mark.integration


def test_walk_from_a_version_reaches_the_upstream_attempt(records: Records) -> None:
    ref = parse_ref(f"{MODEL}/1")
    with Walker(open_client(records.uri), records.store) as walker:
        lineage = walker.from_model(ref, walker.resolve(ref))
    assert lineage.gaps == []
    assert (lineage.pipeline, lineage.run_id) == (PIPELINE, RUN_ID)
    assert lineage.parent is not None and lineage.parent.run_id == records.parent_run
    assert lineage.sources is not None and set(lineage.notebooks) == {"prep", "train"}
    assert [(a.key, a.role) for a in lineage.attempts] == [("prep#2", "upstream"), ("train#1", "model")]
    prep, train = lineage.attempts
    assert prep.run is not None and prep.run.run_id == records.prep_run
    assert train.run is not None and train.run.run_id == records.train_run
    assert [c.key for c in prep.consumers] == ["train#1"]
    assert prep.rel == records.attempt_rel("prep", 2)
    assert prep.stored_manifest == (records.attempt_dir("prep", 2) / "manifest.json").read_bytes()
    assert train.recorded_manifest == (records.attempt_dir("train", 1) / "manifest.json").read_bytes()


def test_by_alias_and_by_models_uri_reach_the_same_version(records: Records) -> None:
    by_alias = audit_model(f"models:/{MODEL}@champion")
    by_version = audit_model(f"{MODEL}/1")
    assert by_alias.subject.model is not None and by_alias.subject.model.version == "1"
    assert by_alias.subject.model.aliases == ("champion",)
    assert by_alias.subject.ref == f"models:/{MODEL}@champion"
    assert [s.key for s in by_alias.stages] == [s.key for s in by_version.stages] == ["prep#2", "train#1"]
    assert by_alias.ok and by_version.ok


def test_a_version_without_nbops_tags_is_walked_from_its_source_run(records: Records) -> None:
    report = audit_model(f"{MODEL}/3")
    assert report.ok, report.to_text()
    assert [s.key for s in report.stages] == ["prep#2", "train#1"]
    assert not any(c.subject.startswith("model ") for c in report.checks)  # nothing on the version to compare


def test_the_node_gathers_what_ran(records: Records) -> None:
    report = audit_model(f"{MODEL}@champion")
    assert report.pipeline_run is not None
    run = report.pipeline_run
    assert (run.run_id, run.trigger, run.status, run.overrides) == (
        RUN_ID,
        "nbops run",
        "succeeded",
        {"train.lr": "0.5"},
    )
    assert run.spec is not None and run.spec.store_path == records.spec_rel and run.spec.indexed
    prep, train = report.stages
    assert {p.name: (p.value, p.source) for p in prep.parameters} == {"rows": (100, "spec"), "seed": (0, "default")}
    assert {p.name: (p.value, p.source) for p in train.parameters} == {
        "lr": (0.5, "override"),
        "epochs": (8, "spec"),
        "label": ("y", "default"),
    }
    assert [(i.stage, i.attempt) for i in train.inputs] == [("prep", 2)]
    assert train.inputs[0].location == records.location(records.attempt_rel("prep", 2))
    assert {o.path for o in train.outputs} == {
        "output.html",
        "output.ipynb",
        "outputs/metrics.json",
        "outputs/model.pkl",
    }
    assert train.environment == "python 3.11.7 at /prefix" and train.git_dirty is False
    assert train.notebook is not None and train.notebook.path == "nb/train.ipynb"
    assert train.notebook.location == records.location(records.notebooks["train"])
    assert train.mlflow_run_id == records.train_run and train.started_at and train.ended_at
    assert train.metrics == {"auc": 0.91}


def test_audit_run_takes_each_stages_latest_successful_attempt(records: Records) -> None:
    report = audit_run(RUN_ID)
    assert report.ok, report.to_text()
    assert report.subject.kind == "run" and report.subject.model is None
    assert [(s.key, s.role, s.status) for s in report.stages] == [
        ("prep#2", "stage", "succeeded"),
        ("train#1", "stage", "succeeded"),
    ]


def test_audit_run_shows_a_failed_stage_without_failing(records: Records) -> None:
    report = audit_run(FAILED_RUN_ID)
    assert report.ok, report.to_text()
    assert report.pipeline_run is not None and report.pipeline_run.status == "failed"
    prep, train = report.stages
    assert (prep.key, prep.status) == ("prep#1", "succeeded")
    assert (train.key, train.status) == ("train#1", "failed")
    assert train.failure is not None
    assert (train.failure.cell, train.failure.error) == ("1", "ValueError")
    assert "too few rows" in train.failure.message
    assert {p.name: p.value for p in train.parameters} == {"lr": 0.1, "epochs": 8, "label": "y"}
    text = report.to_text()
    assert "train#1  failed" in text and "too few rows" in text


def test_an_interactive_version_has_no_lineage(records: Records) -> None:
    report = audit_model(f"{MODEL}@sandbox")
    assert not report.ok
    assert report.pipeline_run is None and report.stages == ()
    [check] = report.checks
    assert check.subject == "lineage" and not check.ok
    assert "registered outside a pipeline run" in check.detail and records.interactive_run in check.detail
    assert "registered outside a pipeline run" in report.to_text()


@pytest.mark.parametrize(
    ("ref", "named"),
    [
        ("nosuchmodel/1", ["no registered model 'nosuchmodel'"]),
        (f"{MODEL}/9", [f"'{MODEL}' has no version 9", "versions: 1, 2, 3"]),
        (f"{MODEL}@nope", ["no alias 'nope'", "champion -> version 1", "sandbox -> version 2"]),
        ("nosuchmodel@champion", ["no registered model 'nosuchmodel'"]),
    ],
)
def test_unknown_models_versions_and_aliases_are_input_errors(records: Records, ref: str, named: list[str]) -> None:
    with pytest.raises(InputError) as raised:
        audit_model(ref)
    for text in named:
        assert text in str(raised.value)


def test_an_unknown_run_is_an_input_error(records: Records) -> None:
    with pytest.raises(InputError, match="no pipeline run with this nbops run id") as raised:
        audit_run("20990101T000000Z-000000")
    assert "20990101T000000Z-000000" in str(raised.value)
    with pytest.raises(InputError):
        audit_run(records.parent_run)  # an MLflow run id is not an nbops run id
