"""nbops debug: a failed attempt reopened where the notebook API reads exactly what that run consumed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nbops.api as api
from nbops.context import PIN_FILE
from tests.attempts.conftest import Runs


def papermill(notebook: Path) -> subprocess.CompletedProcess[str]:
    """The materialised notebook executed as it is, as the printed command runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}
    rerun = notebook.with_suffix(".rerun.ipynb").name
    return subprocess.run(
        [sys.executable, "-m", "papermill", notebook.name, rerun],
        cwd=notebook.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.integration
def test_debug_reads_the_upstream_attempt_the_failed_run_consumed(
    runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, target = runs.project, tmp_path / "here"
    result = project.nbops("debug", "down", "--run", runs.failed, "--dir", str(target))
    assert result.returncode == 0, result.stdout + result.stderr
    notebook = target / "nb" / "down.ipynb"
    assert (target / "nb" / "helpers.py").read_text() == (project.root / "nb" / "helpers.py").read_text()
    assert f"stage 'down' attempt 1 of run {runs.failed} is in {target}" in result.stdout
    assert "cell 4 (In [5]) raised ValueError: refused 1" in result.stdout
    assert f"jupyter lab {notebook}" in result.stdout
    executed = json.loads(notebook.read_text())
    assert executed["metadata"]["nbops"]["failed_cell"] == 4
    assert "down read 1" in json.dumps(executed["cells"][2]["outputs"])
    # A newer run of 'up' wrote 2: plain interactive work would read it; the pinned directory does not.
    monkeypatch.chdir(project.root)
    assert (api.input_dir("up") / "value.txt").read_text() == "2"
    monkeypatch.chdir(notebook.parent)
    pinned = api.input_dir("up")
    assert (pinned / "value.txt").read_text() == "1" and runs.failed in str(pinned)
    assert api.output_dir() == target / "outputs"
    (original,) = project.root.glob(f".nbops/artifacts/runs/dbg/{runs.failed}/down/attempt-1/outputs/seen.txt")
    stamp = original.stat().st_mtime_ns
    rerun = papermill(notebook)
    assert rerun.returncode != 0 and "ValueError: refused 1" in rerun.stderr + rerun.stdout  # fails as it did
    assert (target / "outputs" / "seen.txt").read_text() == "11"  # read value 1, wrote through the helper
    assert original.stat().st_mtime_ns == stamp  # the attempt in the store is left alone


@pytest.mark.integration
def test_debug_makes_a_new_directory_beside_the_pipeline_and_never_overwrites(runs: Runs) -> None:
    project = runs.project
    made = project.nbops("debug", "down", "--run", runs.failed)
    assert made.returncode == 0, made.stderr
    target = project.root / "debug" / f"down-{runs.failed}-attempt-1"
    pin = json.loads((target / PIN_FILE).read_text())
    assert pin["run_id"] == runs.failed and pin["stage"] == "down" and pin["attempt"] == 1
    assert pin["pipeline_file"] == str(project.pipeline.resolve()) and pin["output_dir"] == "outputs"
    assert pin["inputs"] == {"up": str(project.attempts("dbg", "up")[0] / "outputs")}
    before = (target / "nb" / "down.ipynb").read_bytes()
    (target / "nb" / "down.ipynb").write_text("my edits")
    again = project.nbops("debug", "down", "--run", runs.failed)
    assert again.returncode == 2 and "exists and is not empty; nbops debug never overwrites" in again.stderr
    assert (target / "nb" / "down.ipynb").read_text() == "my edits" and before != b"my edits"


@pytest.mark.integration
def test_debug_refuses_unknown_names_and_a_swept_stage_without_a_point(runs: Runs, tmp_path: Path) -> None:
    project = runs.project
    for args, expected in (
        (("nowhere",), "there is no stage 'nowhere'"),
        (("down", "--run", "20200101T000000Z-000000"), "run '20200101T000000Z-000000': no such run"),
        (("sweep", "--run", runs.failed), "stage 'sweep' is swept over 2 points"),
    ):
        result = project.nbops("debug", *args, "--dir", str(tmp_path / "new"))
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert expected in result.stderr, (args, result.stderr)
        assert not (tmp_path / "new").exists()
    point = project.nbops("debug", "sweep", "--run", runs.failed, "--point", "0", "--dir", str(tmp_path / "point"))
    assert point.returncode == 0, point.stderr
    assert "stage 'sweep/point-" in point.stdout and "succeeded" in point.stdout
    assert json.loads((tmp_path / "point" / PIN_FILE).read_text())["unit"].startswith("sweep/point-")
