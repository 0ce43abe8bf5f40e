"""The example pipeline end to end on small parameters, its MLflow record, and nbval."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Project, example_project

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STAGES = ["ingest", "transform", "prepare", "train", "optimize", "evaluate"]
SMOKE = ["-p", "ingest.batch_size=400", "-p", "optimize.n_iter=2", "-p", "optimize.cv_folds=2"]


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("example")
    project = example_project(root)
    return project, project.nbops("run", "pipeline.yaml", "--run-date", "2026-06-01", *SMOKE, timeout=600)


def test_example_runs_end_to_end(example: tuple[Project, subprocess.CompletedProcess[str]]) -> None:
    _, result = example
    assert result.returncode == 0, result.stdout + result.stderr
    for stage in STAGES:
        assert f"ok    {stage}" in result.stderr
    assert "succeeded" in result.stderr.splitlines()[-1]
    assert "gate diagnosis-classifier: promoted (first_version)" in result.stderr


def test_example_mlflow_record(example: tuple[Project, subprocess.CompletedProcess[str]]) -> None:
    project, result = example
    assert result.returncode == 0, result.stdout + result.stderr
    client = project.client()
    runs = project.runs("diagnosis")
    parents = [r for r in runs if r.data.tags.get("nbops.kind") == "pipeline"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    for tag in ("nbops.pipeline", "nbops.run_id", "nbops.spec_sha256", "nbops.git_commit", "nbops.trigger"):
        assert parent.data.tags.get(tag), tag
    children = {
        r.data.tags["nbops.stage"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    assert sorted(children) == sorted(STAGES)
    for stage, run in children.items():
        assert run.info.status == "FINISHED", stage
        assert len(run.data.tags["nbops.notebook.sha256"]) == 64
        # A local run used no image: the record names the Python environment it ran in.
        assert "nbops.image" not in run.data.tags
        assert run.data.tags["nbops.environment"].startswith("python 3.11"), run.data.tags
        assert len(run.data.tags["nbops.packages_sha256"]) == 64
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"output.ipynb", "output.html", "manifest.json"} <= artifacts, stage
        assert run.data.metrics, f"{stage} logged no metrics"
    assert children["ingest"].data.params["batch_size"] == "400"
    assert children["optimize"].data.params["n_iter"] == "2"
    assert children["optimize"].data.metrics["candidates"] == 2.0
    assert 0.5 < children["evaluate"].data.metrics["roc_auc"] <= 1.0

    versions = client.search_model_versions("name = 'diagnosis-classifier'")
    assert len(versions) == 1
    assert versions[0].run_id == children["evaluate"].info.run_id
    model = client.get_registered_model("diagnosis-classifier")
    assert {k: str(v) for k, v in model.aliases.items()} == {"challenger": "1", "champion": "1"}


def test_the_champion_is_audited_back_to_the_ingested_batch(
    example: tuple[Project, subprocess.CompletedProcess[str]],
) -> None:
    project, result = example
    assert result.returncode == 0
    version = project.client().get_model_version("diagnosis-classifier", "1")
    assert version.tags["nbops.stage"] == "evaluate" and version.tags["nbops.stage_run"] == version.run_id
    audit = project.nbops("audit", "diagnosis-classifier@champion")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    for stage in STAGES:  # every upstream attempt, through the manifests' inputs
        assert f"{stage}#1" in audit.stdout, stage
    assert "all passed" in audit.stdout.strip().splitlines()[-1]


def test_notebooks_run_interactively_under_nbval(example: tuple[Project, subprocess.CompletedProcess[str]]) -> None:
    """The same notebooks run unchanged in Jupyter: nbval (lax) against the run's outputs."""
    project, result = example
    assert result.returncode == 0
    ini = project.root / "nbval.ini"
    ini.write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}
    env["NBOPS_PIPELINE_FILE"] = str(project.pipeline)
    notebooks = [str(project.root / "notebooks" / f"{s}.ipynb") for s in STAGES]
    check = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ini), "-p", "no:cacheprovider", "--nbval-lax", "-q", *notebooks],
        cwd=project.root / "notebooks",
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert check.returncode == 0, check.stdout[-4000:] + check.stderr[-2000:]
    assert " passed" in check.stdout
    assert Path(project.root / ".nbops" / "scratch" / "outputs" / "batch.csv").exists()


def test_the_monitor_compares_new_batches_with_the_champions(
    example: tuple[Project, subprocess.CompletedProcess[str]],
) -> None:
    project, _ = example
    small = ["-p", "monitor.batch_size=400"]
    same = project.nbops("monitor", "--run-date", "2026-06-15", *small, timeout=600)
    assert same.returncode == 0, same.stderr
    assert "trigger drift_score > 0.2 does not hold" in same.stderr
    later = project.nbops("monitor", "--run-date", "2026-12-01", "--dry-run", *small, timeout=600)
    assert later.returncode == 0, later.stderr
    assert "trigger drift_score > 0.2 holds" in later.stderr and "dry_run" in later.stderr
    (newest, *_) = sorted(project.attempts("diagnosis", "monitor"), key=lambda p: -p.stat().st_mtime)
    drift = (newest / "outputs" / "drift.csv").read_text().splitlines()
    assert drift[0].startswith("feature") and len(drift) > 20
