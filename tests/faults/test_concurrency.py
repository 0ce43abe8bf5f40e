"""Duplicate and concurrent runs: attempts never interleave or overwrite, one parent run per
run id, and SQLite under many parallel stages loses nothing (counted)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import Project, read_json

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def exec_stage(project: Project, stage: str, run_id: str) -> subprocess.Popen[str]:
    args = ["exec-stage", "--pipeline", "pipeline.yaml", "--stage", stage, "--run-id", run_id]
    return project.popen(*args, stdout=subprocess.DEVNULL)


def test_the_same_stage_started_twice_gets_two_attempts_and_one_parent(project: Project) -> None:
    """A retry while a zombie attempt is still writing: both finish, neither touches the other."""
    project.add_notebook(
        "slow",
        [
            ("import nbops, os, time, pathlib\nout = pathlib.Path(nbops.output_dir())", []),
            (
                "for i in range(6):\n    (out / f'part-{i}').write_text(os.environ['NBOPS_ATTEMPT'])\n    time.sleep(0.5)",
                [],
            ),
        ],
    )
    project.write_spec({"name": "dup", "stages": {"slow": {"notebook": "nb/slow.ipynb"}}})
    procs = [exec_stage(project, "slow", "same-run") for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    attempts = project.attempts("dup", "slow")
    assert [a.name for a in attempts] == ["attempt-1", "attempt-2"]
    for attempt in attempts:
        number = attempt.name.split("-")[1]
        manifest = read_json(attempt / "manifest.json")
        assert manifest["attempt"] == int(number)
        parts = sorted((attempt / "outputs").iterdir())
        assert [p.read_text() for p in parts] == [number] * 6  # nothing from the other attempt
    runs = project.runs("dup")
    parents = [r for r in runs if r.data.tags.get("nbops.kind") == "pipeline"]
    assert len(parents) == 1
    stage_runs = [r for r in runs if r.data.tags.get("nbops.kind") == "stage"]
    assert sorted(r.data.tags["nbops.attempt"] for r in stage_runs) == ["1", "2"]
    assert {r.data.tags["mlflow.parentRunId"] for r in stage_runs} == {parents[0].info.run_id}


STAGES = 8
RUNS = 5


@pytest.mark.timeout(1800)
def test_sqlite_under_parallel_stages_loses_nothing(project: Project) -> None:
    """8 stages at once, 5 runs: every run, metric and artifact is there, counted."""
    project.add_notebook(
        "m",
        [
            ("value: int = 0", ["parameters"]),
            ("import nbops, os\nnbops.log_metric('stage_value', value)\nscore = value * 2", ["metrics"]),
        ],
    )
    project.write_spec(
        {
            "name": "stress",
            "stages": {f"s{i}": {"notebook": "nb/m.ipynb", "parameters": {"value": i}} for i in range(STAGES)},
        }
    )
    for run in range(RUNS):
        # --force: every run executes its notebooks; their concurrent writes are what is tested.
        result = project.nbops(
            "run", "pipeline.yaml", "--jobs", str(STAGES), "--run-id", f"r{run:02d}", "--force", timeout=600
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = project.runs("stress")
    parents = [r for r in runs if r.data.tags.get("nbops.kind") == "pipeline"]
    stage_runs = [r for r in runs if r.data.tags.get("nbops.kind") == "stage"]
    assert len(parents) == RUNS
    assert len(stage_runs) == RUNS * STAGES
    assert all(r.info.status == "FINISHED" for r in stage_runs)
    metrics = [(r.data.tags["nbops.stage"], r.data.metrics) for r in stage_runs]
    assert all(m == {"stage_value": float(s[1:]), "score": float(s[1:]) * 2} for s, m in metrics)
    client = project.client()
    artifacts = sum(len(client.list_artifacts(r.info.run_id)) for r in stage_runs)
    assert artifacts == RUNS * STAGES * 3  # output.ipynb, output.html, manifest.json
    manifests = list(Path(project.root, ".nbops", "artifacts", "runs", "stress").glob("*/*/attempt-1/manifest.json"))
    assert len(manifests) == RUNS * STAGES
