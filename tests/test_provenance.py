"""What ran, archived once: content-addressed sources, the parent run's index and overrides, and
how a DAG run's record is settled and closed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from nbops import provenance
from nbops.errors import InputError
from nbops.lock import notebook_rel
from nbops.provenance import AirflowRun, Sources
from nbops.spec import load_pipeline
from nbops.storage.local import LocalStore
from nbops.tracking import pipeline_run, record, tags
from nbops.tracking.store import default_tracking_uri, open_client
from tests.conftest import Project

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return open_client(default_tracking_uri(tmp_path_factory.mktemp("mlflow")))


def two_stages(root: Path) -> Project:
    project = Project(root)
    a = project.add_notebook("a", [("x: int = 1", ["parameters"]), ("print(x)", [])])
    b = project.add_notebook("b", [("print('b')", [])])
    project.write_spec({"name": "pp", "stages": {"a": {"notebook": a}, "b": {"notebook": b, "needs": ["a"]}}})
    return project


@pytest.mark.unit
def test_sources_of_a_working_tree_are_stored_once_by_content(tmp_path: Path) -> None:
    project = two_stages(tmp_path)
    pipeline = load_pipeline(project.pipeline)
    store = LocalStore(tmp_path / "store")
    sources = provenance.publish_sources(store, pipeline)
    raw_a = (tmp_path / "nb" / "a.ipynb").read_bytes()
    assert sources.notebooks["a"].sha256 == hashlib.sha256(raw_a).hexdigest()
    assert sources.notebooks["a"].path == "nb/a.ipynb"
    assert (store.root / notebook_rel(sources.notebooks["a"].sha256)).read_bytes() == raw_a
    assert (store.root / sources.spec.store_path).read_bytes() == project.pipeline.read_bytes()
    assert sources.spec.sha256 == pipeline.sha256 and sources.lock is None
    before = sorted(p.name for p in (store.root / "notebooks").iterdir())
    assert provenance.publish_sources(store, pipeline) == sources  # a second run adds no copy
    assert sorted(p.name for p in (store.root / "notebooks").iterdir()) == before
    assert Sources.model_validate_json(sources.to_text()) == sources


@pytest.mark.unit
def test_the_index_lists_each_stage_s_helper_files_stored_by_content(tmp_path: Path) -> None:
    project = two_stages(tmp_path)
    (tmp_path / "nb" / "helpers.py").write_text("def rows():\n    return 3\n")
    store = LocalStore(tmp_path / "store")
    sources = provenance.publish_sources(store, load_pipeline(project.pipeline))
    sha = hashlib.sha256((tmp_path / "nb" / "helpers.py").read_bytes()).hexdigest()
    assert {stage: [(f.path, f.sha256, f.store_path) for f in files] for stage, files in sources.files.items()} == {
        stage: [("nb/helpers.py", sha, f"files/{sha}")] for stage in ("a", "b")
    }
    assert (store.root / "files" / sha).read_bytes() == (tmp_path / "nb" / "helpers.py").read_bytes()
    assert Sources.model_validate_json(sources.to_text()) == sources


def test_archive_logs_the_index_and_the_spec_on_the_parent(client: Any, tmp_path: Path) -> None:
    project = two_stages(tmp_path)
    store = LocalStore(tmp_path / "store")
    sources = provenance.publish_sources(store, load_pipeline(project.pipeline))
    exp = record.ensure_experiment(client, "archive", (tmp_path / "mlflow").as_uri())
    parent = pipeline_run.get_or_create(client, exp, "archive", "r1", {})
    provenance.archive(client, parent, store, sources)
    assert {a.path for a in client.list_artifacts(parent, "pipeline")} == {
        "pipeline/pipeline.yaml",
        "pipeline/sources.json",
    }
    text = Path(client.download_artifacts(parent, provenance.SOURCES_ARTIFACT, str(tmp_path / "dl"))).read_text()
    assert Sources.model_validate_json(text) == sources


def test_overrides_are_params_and_a_resume_never_changes_one(client: Any) -> None:
    exp = record.ensure_experiment(client, "overrides", None)
    parent = pipeline_run.get_or_create(client, exp, "overrides", "r1", {})
    assert provenance.log_overrides(client, parent, {"train": {"C": 0.5, "name": "x"}}) == []
    assert client.get_run(parent).data.params == {"train.C": "0.5", "train.name": "x"}
    # The same run resumed with another value for C and a new override.
    assert provenance.log_overrides(client, parent, {"train": {"C": 0.7}, "prep": {"n": [1]}}) == ["train.C"]
    assert client.get_run(parent).data.params == {"train.C": "0.5", "train.name": "x", "prep.n": "[1]"}


def stage_run(client: Any, exp: str, parent: str, stage: str, attempt: int, status: str | None) -> str:
    run = record.start_stage_run(client, exp, parent, stage=stage, attempt=attempt, extra_tags={})
    if status is not None:
        mlflow_status = {"succeeded": "FINISHED", "killed": "KILLED"}.get(status, "FAILED")
        record.set_tags(client, run, {tags.STATUS: status})
        record.finish_run(client, run, mlflow_status)
    return run


@pytest.mark.parametrize(
    ("attempts", "outcome", "stages"),
    [
        ({"a": ["succeeded"], "b": ["failed", "succeeded"]}, "succeeded", {"a": "succeeded", "b": "succeeded"}),
        ({"a": ["succeeded"], "b": ["succeeded", "failed"]}, "failed", {"a": "succeeded", "b": "failed"}),
        ({"a": ["failed"]}, "failed", {"a": "failed", "b": "not run"}),
        ({"a": ["succeeded"], "b": ["killed"]}, "killed", {"a": "succeeded", "b": "killed"}),
        ({"a": ["succeeded"], "b": [None]}, "killed", {"a": "succeeded", "b": "killed"}),  # its pod died
    ],
)
def test_settle_reads_each_stages_last_attempt(
    client: Any, attempts: dict[str, list[str | None]], outcome: str, stages: dict[str, str]
) -> None:
    exp = record.ensure_experiment(client, "settle", None)
    parent = pipeline_run.get_or_create(client, exp, "settle", f"r-{len(client.search_runs([exp]))}", {})
    made = [
        stage_run(client, exp, parent, stage, n, status)
        for stage, statuses in attempts.items()
        for n, status in enumerate(statuses, 1)
    ]
    closed = provenance.settle(client, exp, parent, ["a", "b"])
    assert (closed.outcome, closed.stages) == (outcome, stages)
    left_open = [r for r, s in zip(made, [s for v in attempts.values() for s in v], strict=True) if s is None]
    assert list(closed.orphans) == left_open
    for run in left_open:
        info = client.get_run(run)
        assert info.info.status == "KILLED" and info.data.tags[tags.ERROR_MESSAGE] == provenance.ORPHANED


@pytest.mark.unit
def test_the_dag_run_description_is_parsed_or_refused() -> None:
    text = json.dumps({"dag_id": "d", "run_id": "manual__1", "logical_date": "2026-11-21T02:00:00+00:00", "conf": {}})
    assert AirflowRun.from_json(text) == AirflowRun("d", "manual__1", "2026-11-21T02:00:00+00:00", {})
    for bad in ("{", "[]", '{"dag_id": "d"}', '{"dag_id": "d", "run_id": "r", "conf": [1]}'):
        with pytest.raises(InputError, match="--airflow-json"):
            AirflowRun.from_json(bad)


def test_a_decision_still_awaiting_approval_when_the_dag_run_ends_is_recorded_rejected(tmp_path: Path) -> None:
    from nbops.provenance import REFUSED_BY, _record_refusal
    from nbops.spec import RetrainSpec
    from nbops.tracking import gate, tags
    from tests.tracking.test_gate import MODEL, Registry

    registry = Registry(tmp_path)
    first, version = registry.stage_run({"auc": 0.9})
    parent = registry.client.create_run(registry.experiment, tags={tags.RUN_ID: first, tags.KIND: "pipeline"})
    retrain = RetrainSpec(model=MODEL, stage="evaluate", metric="auc", approval="manual")
    gate.apply(registry.client, gate.decide(registry.client, retrain, registry.experiment, first), parent.info.run_id)
    _record_refusal(registry.client, MODEL, parent.info.run_id)
    recorded = registry.client.get_model_version(MODEL, version).tags
    assert (recorded[tags.GATE_DECISION], recorded[tags.GATE_APPROVED_BY]) == ("rejected", REFUSED_BY)
    assert registry.client.get_run(parent.info.run_id).data.tags[tags.GATE_DECISION] == "rejected"
    assert registry.champion() is None


def test_a_run_whose_gate_failed_or_never_decided_closes_failed(tmp_path: Path) -> None:
    from nbops.provenance import Closed, _judged_by_the_gate
    from nbops.tracking import tags
    from tests.tracking.test_gate import Registry

    registry = Registry(tmp_path)
    parent = registry.client.create_run(registry.experiment, tags={tags.KIND: "pipeline"}).info.run_id
    closed = Closed(parent, "succeeded", {"evaluate": "succeeded"})
    undecided = _judged_by_the_gate(registry.client, parent, closed)
    assert (undecided.outcome, undecided.stages["retrain_gate"]) == ("failed", "did not decide")
    registry.client.set_tag(parent, tags.GATE_DECISION, "failed")
    assert _judged_by_the_gate(registry.client, parent, closed).outcome == "failed"
    registry.client.set_tag(parent, tags.GATE_DECISION, "kept")
    assert _judged_by_the_gate(registry.client, parent, closed) == closed


def test_a_monitor_run_before_any_champion_closes_skipped_not_failed(tmp_path: Path) -> None:
    from nbops.provenance import Closed, _skipped_without_champion
    from nbops.tracking import gate
    from tests.tracking.test_gate import MODEL, Registry

    registry = Registry(tmp_path)
    not_run = Closed("p", provenance.PipelineOutcome.FAILED, {"monitor": "not run"})
    skipped = _skipped_without_champion(registry.client, MODEL, not_run)
    assert (skipped.outcome, skipped.outcome.mlflow_status, skipped.stages) == (
        "skipped",
        "FINISHED",
        {"monitor": "skipped"},
    )
    failed = Closed("p", provenance.PipelineOutcome.FAILED, {"monitor": "failed"})
    assert _skipped_without_champion(registry.client, MODEL, failed) == failed  # it ran and failed
    _, version = registry.stage_run({"auc": 0.9})
    registry.client.set_registered_model_alias(MODEL, gate.CHAMPION, version)
    assert _skipped_without_champion(registry.client, MODEL, not_run) == not_run  # a champion: not running is a failure
