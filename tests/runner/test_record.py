"""The parent run the local runner opens: what it says about the run, who started it and where."""

from __future__ import annotations

import getpass
import socket

import pytest

from nbops.runner.record import open_record
from nbops.spec import load_pipeline
from nbops.stage.slots import RunInfo
from nbops.status import PipelineOutcome
from nbops.storage import layout, open_store
from nbops.tracking import tags
from nbops.tracking.store import tracking_uri
from tests.conftest import Project

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("triggered_by", ["", "alice"])
def test_the_parent_run_names_who_started_it_and_where(
    project: Project, monkeypatch: pytest.MonkeyPatch, triggered_by: str
) -> None:
    project.write_spec({"name": "who", "stages": {"s": {"notebook": project.add_notebook("s", [("1", [])])}}})
    monkeypatch.setenv("NBOPS_TRIGGERED_BY", triggered_by)
    pipeline = load_pipeline(project.pipeline)
    uri = tracking_uri(layout.state_dir(pipeline.root))
    info = RunInfo(pipeline, "r1", "2024-05-01", "nbops run", uri, experiment_id="", parent_run_id="")
    opened = open_record(pipeline, open_store(pipeline.root), info, {}, [], warn=lambda _: None)
    try:
        run = opened.client.get_run(opened.info.parent_run_id)
    finally:
        assert opened.close(PipelineOutcome.SUCCEEDED) is None
    credited = triggered_by or getpass.getuser()
    assert run.data.tags[tags.USER] == getpass.getuser()
    assert run.data.tags[tags.HOST] == socket.gethostname()
    assert run.data.tags.get(tags.TRIGGERED_BY) == (triggered_by or None)
    assert run.data.tags[tags.MLFLOW_USER] == credited == run.info.user_id  # the UI's "Created by"
    assert run.data.tags[tags.SPEC_SHA256] == pipeline.sha256 and run.data.tags[tags.TRIGGER] == "nbops run"
