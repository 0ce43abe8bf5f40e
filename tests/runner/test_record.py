"""The parent run the local runner opens: what it says about the run, who started it and where."""

from __future__ import annotations

import getpass
import socket
from pathlib import Path
from typing import Any

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


def test_an_unchanged_rerun_is_recorded_without_mlflow_as_mlflow_records_it(project: Project, tmp_path: Path) -> None:
    """Two reused stages, recorded once without importing MLflow (the store is at this MLflow's
    revision) and once through MLflow (its template gone, the revision unknown): read back through
    MLflow, the two records are the same field by field."""
    import mlflow

    from nbops.tracking import template
    from tests.tracking.test_sqlite_client import _view

    first = project.add_notebook("first", [("x = 1", ["parameters"]), ("print(x)", [])])
    second = project.add_notebook("second", [("print(2)", [])])
    project.write_spec(
        {"name": "again", "stages": {"a": {"notebook": first}, "b": {"notebook": second, "needs": ["a"]}}}
    )
    env = {"NBOPS_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPROFILEIMPORTTIME": "1"}

    def run(name: str) -> str:
        proc = project.popen("run", "pipeline.yaml", "--run-id", name, "-p", "a.x=3", env=env)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        return err

    run("r0")
    assert " mlflow\n" not in run("fast")
    template_file = tmp_path / "cache" / template.TEMPLATE_DIR / f"mlflow-{mlflow.__version__}.db"
    template_file.unlink()  # the installed MLflow's revision is not known now: MLflow records
    assert " mlflow\n" in run("slow")
    client = project.client()
    exp = client.get_experiment_by_name("again").experiment_id

    def records(run_id: str) -> dict[str, Any]:
        [parent] = client.search_runs(
            [exp], filter_string=f"tags.`{tags.RUN_ID}` = '{run_id}' and tags.`nbops.kind` = 'pipeline'"
        )
        stages = {
            r.data.tags[tags.STAGE]: r.info.run_id
            for r in client.search_runs([exp], filter_string=f"tags.`{tags.PARENT_RUN}` = '{parent.info.run_id}'")
        }
        ids = {parent.info.run_id: "PARENT", run_id: "RUN", **{v: f"STAGE-{k}" for k, v in stages.items()}}
        views = {name: _view(client, rid, ids) for name, rid in {"parent": parent.info.run_id, **stages}.items()}
        for view in views.values():  # the manifests hold their own run's times and hashes
            view["files"] = [name for name, _ in view["files"]]
        return views

    fast, slow = records("fast"), records("slow")
    assert set(fast) == {"parent", "a", "b"}
    assert fast["a"]["tags"][tags.STATUS] == fast["b"]["tags"][tags.STATUS] == "cached"
    assert fast["parent"]["info"]["status"] == "FINISHED"
    assert [i[0] for i in fast["b"]["inputs"]] == ["a"]
    for name in fast:
        for part in fast[name]:
            assert fast[name][part] == slow[name][part], (name, part)
