"""The stage run's record: experiment kind, dataset inputs of the upstream attempts, model version tags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nbops.storage.manifest import ManifestInput
from nbops.tracking import record, tags
from nbops.tracking.store import default_tracking_uri, open_client

pytestmark = pytest.mark.integration

SHA = "ab" * 32


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return open_client(default_tracking_uri(tmp_path_factory.mktemp("mlflow")))


def test_experiments_open_in_the_model_training_view(client: Any) -> None:
    created = record.ensure_experiment(client, "kind-new", None)
    assert client.get_experiment(created).tags[tags.EXPERIMENT_KIND] == "custom_model_development"
    older = client.create_experiment("kind-old")  # made before nbops tagged experiments
    assert record.ensure_experiment(client, "kind-old", None) == older
    assert client.get_experiment(older).tags[tags.EXPERIMENT_KIND] == "custom_model_development"


def test_upstream_attempts_are_dataset_inputs_with_their_manifest_digest(client: Any) -> None:
    exp = record.ensure_experiment(client, "lineage", None)
    run = client.create_run(exp).info.run_id
    consumed = (
        ManifestInput(stage="prep", attempt=2, manifest_sha256=SHA, location="/store/runs/p/r/prep/attempt-2"),
        ManifestInput(stage="feat", attempt=1, manifest_sha256="cd" * 32, location="s3://b/runs/p/r/feat/attempt-1"),
    )
    record.log_upstream(client, run, consumed)
    inputs = {i.dataset.name: i for i in client.get_run(run).inputs.dataset_inputs}
    assert set(inputs) == {"prep", "feat"}
    prep = inputs["prep"]
    assert prep.dataset.digest == SHA[:32] and len(prep.dataset.digest) <= 36  # MLflow's limit
    assert json.loads(prep.dataset.profile) == {"attempt": 2, "manifest_sha256": SHA, "stage": "prep"}
    assert json.loads(prep.dataset.source) == {"uri": "/store/runs/p/r/prep/attempt-2"}
    assert (prep.dataset.source_type, inputs["feat"].dataset.source_type) == ("local", "s3")
    assert {(t.key, t.value) for t in prep.tags} == {(tags.DATASET_CONTEXT, "upstream")}
    record.log_upstream(client, run, ())  # nothing consumed: nothing logged, no error


def test_versions_registered_from_the_run_are_tagged_back(client: Any, tmp_path: Path) -> None:
    exp = record.ensure_experiment(client, "registry", None)
    run = client.create_run(exp).info.run_id
    other = client.create_run(exp).info.run_id
    client.create_registered_model("m")
    mine = client.create_model_version("m", str(tmp_path), run_id=run)
    theirs = client.create_model_version("m", str(tmp_path), run_id=other)
    wanted = {tags.PIPELINE: "p", tags.STAGE_RUN: run, tags.GIT_COMMIT: "abc"}
    assert record.tag_model_versions(client, run, wanted) == [f"m/{mine.version}"]
    assert client.get_model_version("m", mine.version).tags == wanted
    assert client.get_model_version("m", theirs.version).tags == {}


def test_versions_are_described_below_what_the_notebook_wrote_once(client: Any, tmp_path: Path) -> None:
    exp = record.ensure_experiment(client, "described", None)
    run = client.create_run(exp).info.run_id
    client.create_registered_model("d")
    plain = client.create_model_version("d", str(tmp_path), run_id=run)
    own = client.create_model_version("d", str(tmp_path), run_id=run, description="Tuned for recall.")
    asked: list[str] = []

    def lineage() -> str:
        asked.append("lineage")
        return "### Lineage\n\n- [stage run](#/experiments/1/runs/x)"

    for _ in range(2):  # the record is retried as a whole: the text is written once
        record.tag_model_versions(client, run, {tags.STAGE_RUN: run}, lineage)
    assert client.get_model_version("d", plain.version).description == lineage()
    assert client.get_model_version("d", own.version).description == f"Tuned for recall.\n\n---\n\n{lineage()}"

    asked.clear()
    nothing = client.create_run(exp).info.run_id
    assert record.tag_model_versions(client, nothing, {tags.STAGE_RUN: nothing}, lineage) == []
    assert asked == []  # a run that registered nothing is not described


def test_a_description_never_passes_mlflows_limit() -> None:
    lineage = "L" * 1000
    text = record.described("N" * 6000, lineage)
    assert len(text) == record.DESCRIPTION_LIMIT and text.endswith(lineage)
    assert record.described(text, lineage) == text  # already described
    assert record.described(None, "") == ""


def test_an_attempt_that_starts_closes_its_stages_earlier_open_attempts(client: Any) -> None:
    from nbops.tracking import pipeline_run

    exp = record.ensure_experiment(client, "retries", None)
    parent = pipeline_run.get_or_create(client, exp, "retries", "r1", {})
    first = record.start_stage_run(client, exp, parent, stage="train", attempt=1, extra_tags={})
    other = record.start_stage_run(client, exp, parent, stage="prep", attempt=1, extra_tags={})
    assert record.close_predecessors(client, exp, parent, "train", 1) == []  # a first attempt has none
    second = record.start_stage_run(client, exp, parent, stage="train", attempt=2, extra_tags={})
    assert record.close_predecessors(client, exp, parent, "train", 2) == [first]
    closed = client.get_run(first)
    assert closed.info.status == "KILLED" and closed.data.tags[tags.STATUS] == "killed"
    assert "closed when attempt 2 of 'train' started" in closed.data.tags[tags.ERROR_MESSAGE]
    assert client.get_run(second).info.status == "RUNNING"  # itself, and another stage's, stay open
    assert client.get_run(other).info.status == "RUNNING"
    assert record.close_predecessors(client, exp, parent, "train", 2) == []  # once closed, left alone
