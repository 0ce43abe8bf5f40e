"""One module owns the pipeline's parent run: creators converge, close sets the outcome."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nbops.status import PipelineOutcome
from nbops.tracking import pipeline_run, record, tags
from nbops.tracking.store import default_tracking_uri, open_client

pytestmark = pytest.mark.integration


def test_concurrent_creators_converge_on_one_parent_and_close_it(tmp_path: Path) -> None:
    client = open_client(default_tracking_uri(tmp_path))
    exp = record.ensure_experiment(client, "p", None)
    with ThreadPoolExecutor(4) as pool:
        ids = list(
            pool.map(lambda _: pipeline_run.get_or_create(client, exp, "p", "r1", {tags.TRIGGER: "t"}), range(4))
        )
    assert len(set(ids)) == 1
    assert pipeline_run.find(client, exp, "r1") == ids[0]
    assert pipeline_run.find(client, exp, "r2") is None
    pipeline_run.close(client, ids[0], PipelineOutcome.KILLED)
    run = client.get_run(ids[0])
    assert run.info.status == "KILLED"
    assert run.data.tags[tags.STATUS] == "killed"
    assert run.data.tags[tags.KIND] == "pipeline" and run.data.tags[tags.TRIGGER] == "t"
    alive = [r for r in client.search_runs([exp]) if r.data.tags.get(tags.RUN_ID) == "r1"]
    assert len(alive) == 1  # the losers deleted their duplicates


def test_the_parent_run_is_credited_to_the_user_its_creator_names(tmp_path: Path) -> None:
    client = open_client(default_tracking_uri(tmp_path))
    exp = record.ensure_experiment(client, "p", None)
    named = {tags.USER: "ops", tags.TRIGGERED_BY: "alice", tags.MLFLOW_USER: "alice"}
    run = client.get_run(pipeline_run.get_or_create(client, exp, "p", "r1", named))
    assert run.info.user_id == "alice"  # MLflow keeps an explicit mlflow.user: the UI's "Created by"
    assert {k: run.data.tags[k] for k in named} == named
    again = pipeline_run.get_or_create(client, exp, "p", "r1", {tags.MLFLOW_USER: "bob"})
    assert again == run.info.run_id and client.get_run(again).info.user_id == "alice"  # the first creator's
