"""The notebook API outside a pipeline run falls back to the latest successful local run."""

from __future__ import annotations

import importlib.metadata as metadata
import os
from pathlib import Path

import pytest

import nbops
from nbops.errors import InputError
from nbops.storage import layout
from nbops.storage.manifest import ReusedAttempt, file_sha256, write_manifest
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


def _sealed(project: Project, run: str, day: int, files: dict[str, str], reused: ReusedAttempt | None = None) -> Path:
    """A completed attempt of stage 'a' in ``run`` holding ``files`` in its outputs."""
    _, attempt = layout.claim_attempt(layout.stage_dir(layout.artifact_root(project.root), "api", run, "a"))
    (attempt / "outputs").mkdir()
    for name, text in files.items():
        (attempt / "outputs" / name).write_text(text)
    status = "succeeded" if reused is None else "cached"
    manifest = manifest_of(
        attempt, pipeline="api", run_id=run, stage="a", status=status, finished_at=f"2026-01-0{day}T00:00:00Z"
    )
    write_manifest(attempt, manifest.model_copy(update={"reused": reused}))
    return attempt


def test_interactively_a_cached_attempt_reads_the_attempt_it_reused(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.write_spec({"name": "api", "stages": {"a": {"notebook": project.add_notebook("a", [("x = 1", [])])}}})
    monkeypatch.chdir(project.root / "nb")
    ran = _sealed(project, "20260101T000000Z-aaaaaa", 1, {"batch.csv": "x\n1\n"})
    reused = ReusedAttempt(
        run_id="20260101T000000Z-aaaaaa",
        attempt=1,
        manifest_sha256=file_sha256(ran / "manifest.json"),
        location=str(ran),
    )
    cached = _sealed(project, "20260102T000000Z-bbbbbb", 2, {}, reused=reused)  # the latest, and its outputs/ is empty
    assert nbops.input_dir("a") == ran / "outputs"
    assert (nbops.input_dir("a") / "batch.csv").read_text() == "x\n1\n"

    (ran / "manifest.json").unlink()  # the attempt that ran is gone: say so, rather than hand back an empty directory
    with pytest.raises(InputError, match=r"reused attempt 1 of run 20260101T000000Z-aaaaaa.*nbops run --force a"):
        nbops.input_dir("a")
    assert cached.is_dir()


@pytest.mark.integration
@pytest.mark.slow
def test_interactively_after_a_cached_run_inputs_are_the_files_that_ran(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real sequence: a run, a second run that reuses every stage, then the notebook in Jupyter."""
    write = "import nbops\n(nbops.output_dir() / 'batch.csv').write_text('x\\n1\\n')"
    project.write_spec({"name": "api", "stages": {"a": {"notebook": project.add_notebook("a", [(write, [])])}}})
    for expected in ("succeeded", "cached"):
        ran = project.nbops("run", "pipeline.yaml")
        assert ran.returncode == 0 and expected in ran.stderr, ran.stderr
    monkeypatch.chdir(project.root / "nb")
    for name in [k for k in os.environ if k.startswith(("NBOPS_", "MLFLOW_"))]:
        monkeypatch.delenv(name)  # as a Jupyter kernel started by hand has them
    assert (nbops.input_dir("a") / "batch.csv").read_text() == "x\n1\n"


def test_in_a_run_inputs_come_from_the_context(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from nbops.context import StageContext

    ctx = StageContext("p", "r", "b", 1, tmp_path / "out", {"a": tmp_path / "a"})
    for key, value in ctx.to_env().items():
        monkeypatch.setenv(key, value)
    assert nbops.input_dir("a") == tmp_path / "a"
    assert nbops.output_dir() == tmp_path / "out"
    with pytest.raises(InputError, match="not a completed upstream stage of 'b'"):
        nbops.input_dir("zzz")


def test_in_a_debug_directory_the_pin_stands_for_the_context(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from nbops.api import find_pipeline_file
    from nbops.context import PIN_FILE, StageContext

    swept = {"fit": [({"C": 1.0}, tmp_path / "p0")]}
    pinned = StageContext("p", "r", "b", 1, Path("outputs"), {"a": tmp_path / "a"}, swept)
    (tmp_path / "debug" / "nb").mkdir(parents=True)
    pin = pinned.to_pin({"pipeline_file": str(tmp_path / "pipeline.yaml")})
    (tmp_path / "debug" / PIN_FILE).write_bytes(pin)
    monkeypatch.chdir(tmp_path / "debug" / "nb")
    assert nbops.input_dir("a") == tmp_path / "a"
    assert nbops.input_dirs("fit") == swept["fit"]
    assert nbops.output_dir() == tmp_path / "debug" / "outputs"
    assert find_pipeline_file() == tmp_path / "pipeline.yaml"
    with pytest.raises(InputError, match="not a completed upstream stage of 'b' in run r"):
        nbops.input_dir("zzz")
    running = StageContext("p", "r2", "b", 3, tmp_path / "out", {"a": tmp_path / "a2"})
    for key, value in running.to_env().items():  # a pipeline run's own context comes first
        monkeypatch.setenv(key, value)
    assert nbops.input_dir("a") == tmp_path / "a2" and nbops.output_dir() == tmp_path / "out"


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
        # Requirements read from the model, pinned: no inference subprocess, nothing this process imported.
        required = Path(mlflow.pyfunc.get_model_dependencies(info.model_uri)).read_text().split()
        assert f"scikit-learn=={metadata.version('scikit-learn')}" in required
        assert f"skops=={metadata.version('skops')}" in required  # the flavor saves with skops
        assert any(r.startswith("mlflow==") for r in required) and not any(r.startswith("pytest") for r in required)
    finally:
        mlflow.end_run()
        mlflow.set_tracking_uri("")
    said = capsys.readouterr().out
    assert "NOT registered as 'prod-model'" in said and f"mlflow.register_model('{info.model_uri}'" in said


def test_the_module_offers_the_notebook_api_and_only_it() -> None:
    from IPython.core.completer import Completer

    assert dir(nbops) == sorted(nbops.__all__)
    assert set(nbops.__all__) == {"__version__", "input_dir", "input_dirs", "output_dir", "log_metric", "log_model"}
    for name in nbops.__all__:
        assert getattr(nbops, name) is not None, name
    assert callable(nbops.input_dir) and nbops.__version__ == "0.1.0"
    # What `nbops.<Tab>` offers in Jupyter (IPython's attribute completion goes through dir()).
    offered = Completer(namespace={"nbops": nbops}).attr_matches("nbops.")
    public = sorted(m.removeprefix("nbops.") for m in offered if not m.startswith("nbops._"))
    assert public == ["input_dir", "input_dirs", "log_metric", "log_model", "output_dir"]
