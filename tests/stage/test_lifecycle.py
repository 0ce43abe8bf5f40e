"""The attempt's phases: what each records, and the stage timeout as an outcome of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from nbops.notebook.outcome import describe_cell
from nbops.stage.attempt_record import airflow_tags, image
from tests.conftest import Project, read_json

SLEEPS = [("print('before')", []), ("import time\ntime.sleep(300)", []), ("print('never')", [])]


@pytest.mark.unit
def test_cells_are_named_by_source_index_and_jupyter_count() -> None:
    assert describe_cell(3, 4) == "cell 3 (In [4])"
    assert describe_cell(0, None) == "cell 0"
    assert describe_cell(None, None) == ""


@pytest.mark.unit
def test_the_image_is_the_pods_or_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBOPS_IMAGE", "registry.example/runner:1.2")
    assert image() == "registry.example/runner:1.2"
    monkeypatch.delenv("NBOPS_IMAGE")
    assert image() is None  # a local run records its Python environment instead


@pytest.mark.unit
def test_airflow_tags_only_under_airflow(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("NBOPS_AIRFLOW_DAG_ID", "NBOPS_AIRFLOW_RUN_ID", "NBOPS_AIRFLOW_TRY_NUMBER"):
        monkeypatch.delenv(var, raising=False)
    assert airflow_tags() == {}
    monkeypatch.setenv("NBOPS_AIRFLOW_DAG_ID", "d")
    monkeypatch.setenv("NBOPS_AIRFLOW_TRY_NUMBER", "2")
    assert airflow_tags() == {"airflow.dag_id": "d", "airflow.try_number": "2"}


@pytest.mark.integration
def test_the_stage_timeout_is_its_own_outcome_with_its_limit(project: Project) -> None:
    # 15 s: the kernel must be well into cell 1 when the limit runs out, even on a loaded machine
    project.write_spec(
        {"name": "slow", "stages": {"s": {"notebook": project.add_notebook("s", SLEEPS), "timeout": 15}}}
    )
    started = time.monotonic()
    result = project.nbops("exec-stage", "--pipeline", "pipeline.yaml", "--stage", "s", "--run-id", "r1")
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert elapsed < 15 + 20, elapsed
    assert "the stage timeout of 15 s ran out while cell 1 (In [2]) ran" in result.stderr
    assert "kernel died" not in result.stderr.lower()
    assert "Traceback" not in result.stderr

    (attempt,) = project.attempts("slow", "s")
    meta = read_json(attempt / "output.ipynb")["metadata"]["nbops"]
    assert (meta["status"], meta["failed_cell"]) == ("stage_timed_out", 1)
    (run,) = [r for r in project.runs("slow") if r.data.tags.get("nbops.kind") == "stage"]
    assert run.info.status == "FAILED"
    assert run.data.tags["nbops.status"] == "stage_timed_out"
    assert run.data.tags["nbops.timeout_s"] == "15"
    assert run.data.tags["nbops.error"] == "StageTimeout"
    assert "stage timeout of 15 s" in run.data.tags["nbops.error_message"]


@pytest.mark.integration
def test_the_stage_log_follows_each_cell_with_its_last_printed_line(project: Project) -> None:
    """The stage command's stdout (its log; a pod's log under Airflow) carries a started and a
    done line per cell, which read back as the runner reads them, secrets masked."""
    from nbops.notebook.progress import DONE, STARTED, parse

    cells = [
        ("import os\nprint('loading')", []),
        ("print('token', os.environ['WAREHOUSE_TOKEN'])", []),
        ("print('last')\n6 * 7", []),
    ]
    project.write_spec({"name": "logged", "stages": {"s": {"notebook": project.add_notebook("s", cells)}}})
    secret = "s3cr3t-Value-4242"
    ran = subprocess.run(
        [sys.executable, "-m", "nbops", "exec-stage", "--pipeline", "pipeline.yaml", "--stage", "s", "--run-id", "r1"],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WAREHOUSE_TOKEN": secret},
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert secret not in ran.stdout
    events = [e for e in map(parse, ran.stdout.splitlines()) if e is not None]
    ends = [(e.kind, e.position, e.total, e.line) for e in events if e.kind != "running"]
    assert ends == [
        (STARTED, 1, 3, ""),
        (DONE, 1, 3, "loading"),
        (STARTED, 2, 3, ""),
        (DONE, 2, 3, "token ***"),
        (STARTED, 3, 3, ""),
        (DONE, 3, 3, "42"),
    ]
    assert "nbops: cell 2/3 done in " in ran.stdout
