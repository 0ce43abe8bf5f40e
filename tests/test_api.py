"""The notebook API outside a pipeline run falls back to the latest successful local run."""

from __future__ import annotations

from pathlib import Path

import pytest

import nbops
from nbops.errors import InputError
from nbops.storage import layout
from nbops.storage.manifest import write_manifest
from tests.conftest import Project
from tests.storage.factory import manifest_of

pytestmark = pytest.mark.unit


def test_interactive_fallbacks(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.write_spec({"name": "api", "stages": {"a": {"notebook": project.add_notebook("a", [("x = 1", [])])}}})
    monkeypatch.chdir(project.root / "nb")
    with pytest.raises(InputError, match="no completed run of stage 'a'"):
        nbops.input_dir("a")
    root = layout.artifact_root(project.root)
    for run, day in (("20260101T000000Z-aaaaaa", 1), ("20260102T000000Z-bbbbbb", 2)):
        _, attempt = layout.claim_attempt(layout.stage_dir(root, "api", run, "a"))
        (attempt / "outputs").mkdir()
        write_manifest(
            attempt, manifest_of(attempt, pipeline="api", run_id=run, finished_at=f"2026-01-0{day}T00:00:00Z")
        )
    layout.claim_attempt(layout.stage_dir(root, "api", "20260103T000000Z-cccccc", "a"))  # never finished
    found = nbops.input_dir("a")
    assert found.parent.parent.parent.name == "20260102T000000Z-bbbbbb"
    scratch = nbops.output_dir()
    assert scratch.is_dir() and "scratch" in scratch.parts


def test_in_a_run_inputs_come_from_the_context(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from nbops.context import StageContext

    ctx = StageContext("p", "r", "b", 1, tmp_path / "out", {"a": tmp_path / "a"})
    for key, value in ctx.to_env().items():
        monkeypatch.setenv(key, value)
    assert nbops.input_dir("a") == tmp_path / "a"
    assert nbops.output_dir() == tmp_path / "out"
    with pytest.raises(InputError, match="not a completed upstream stage of 'b'"):
        nbops.input_dir("zzz")


def test_log_model_rejects_unknown_flavors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_RUN_ID", "x")
    with pytest.raises(InputError, match="no MLflow flavor known"):
        nbops.log_model(object())


@pytest.mark.integration
def test_outside_a_pipeline_run_a_model_is_logged_but_never_registered(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    project.write_spec({"name": "api", "stages": {"a": {"notebook": project.add_notebook("a", [("x = 1", [])])}}})
    monkeypatch.chdir(project.root)
    monkeypatch.setenv("MLFLOW_RUN_ID", "")  # unset, and restored after: log_model sets it
    model = LogisticRegression().fit([[0], [1], [2], [3]], [0, 0, 1, 1])
    try:
        info = nbops.log_model(model, registered_model_name="prod-model")
        client = mlflow.MlflowClient()
        assert info.registered_model_version is None
        assert client.search_model_versions("name = 'prod-model'") == []
        run = client.get_run(info.run_id)
        assert run.data.tags["nbops.kind"] == "interactive"
        assert client.get_experiment(run.info.experiment_id).name == "api-interactive"
    finally:
        mlflow.end_run()
        mlflow.set_tracking_uri("")
    said = capsys.readouterr().out
    assert "NOT registered as 'prod-model'" in said and f"mlflow.register_model('{info.model_uri}'" in said
