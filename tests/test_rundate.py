"""The run date: parsing, the placeholder, and what a stage sees."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from nbops import rundate
from nbops.errors import InputError
from nbops.storage.manifest import read_manifest
from nbops.tracking import tags
from tests.conftest import Project

pytestmark = pytest.mark.unit


def test_parse_accepts_iso_dates_and_names_the_source_otherwise() -> None:
    assert rundate.parse(" 2026-07-01 ", "--run-date") == "2026-07-01"
    with pytest.raises(InputError, match=r"--run-date: '07/01/2026' is not a date; write it as YYYY-MM-DD"):
        rundate.parse("07/01/2026", "--run-date")


def test_resolve_replaces_the_placeholder_in_texts_only() -> None:
    values = {"as_of": "${run_date}", "path": "data/${run_date}.csv", "n": 3, "other": "$run_date"}
    assert rundate.resolve(values, "2026-07-01") == {
        "as_of": "2026-07-01",
        "path": "data/2026-07-01.csv",
        "n": 3,
        "other": "$run_date",
    }
    assert rundate.mentions(values) and not rundate.mentions({"n": 3})


def test_current_reads_the_environment_else_today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(rundate.ENV_RUN_DATE, raising=False)
    assert rundate.current() == datetime.now(UTC).date().isoformat()
    monkeypatch.setenv(rundate.ENV_RUN_DATE, "2026-03-04")
    assert rundate.current() == "2026-03-04"
    monkeypatch.setenv(rundate.ENV_RUN_DATE, "yesterday")
    with pytest.raises(InputError, match="NBOPS_RUN_DATE: 'yesterday' is not a date"):
        rundate.current()


DATED = [("as_of: str = '2026-01-01'  # batch date", ["parameters"]), ("print(as_of)", [])]


def dated_project(project: Project) -> Project:
    project.add_notebook("ingest", DATED)
    project.write_spec(
        {"name": "dated", "stages": {"ingest": {"notebook": "nb/ingest.ipynb", "parameters": {"as_of": "${run_date}"}}}}
    )
    return project


def test_nbops_run_resolves_the_run_date_and_records_it(project: Project) -> None:
    dated_project(project)
    done = project.nbops("run", "--run-date", "2026-07-01")
    assert done.returncode == 0, done.stderr
    (attempt,) = project.attempts("dated", "ingest")
    assert read_manifest(attempt).parameters["as_of"] == "2026-07-01"
    runs = project.runs("dated")
    assert {r.data.tags.get(tags.RUN_DATE) for r in runs} == {"2026-07-01"}
    stage_run = next(r for r in runs if r.data.tags.get(tags.STAGE) == "ingest")
    assert stage_run.data.params["as_of"] == "2026-07-01"
    run_id = stage_run.data.tags[tags.RUN_ID]
    # Resuming the run keeps its date, whatever today is.
    again = project.nbops("run", "--run-id", run_id, "--stage", "ingest")
    assert again.returncode == 0, again.stderr
    newest = max(project.attempts("dated", "ingest"), key=lambda p: p.stat().st_mtime)
    assert read_manifest(newest).parameters["as_of"] == "2026-07-01"


def test_a_bad_run_date_is_refused_before_anything_runs(project: Project) -> None:
    dated_project(project)
    bad = project.nbops("run", "--run-date", "2026-13-01")
    assert bad.returncode == 2
    assert "--run-date: '2026-13-01' is not a date" in bad.stderr
    assert not project.attempts("dated", "ingest")


def test_the_stage_command_reads_the_run_date_from_its_environment(project: Project) -> None:
    dated_project(project)
    result = project.root / "result.json"
    env = {"NBOPS_RUN_DATE": "2026-09-30"}
    proc = project.popen(
        "exec-stage", "--pipeline", "pipeline.yaml", "--stage", "ingest", "--run-id", "r1",
        "--result-file", str(result), env=env,
    )  # fmt: skip
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert json.loads(result.read_text())["status"] == "succeeded"
    (attempt,) = project.attempts("dated", "ingest")
    assert read_manifest(attempt).parameters["as_of"] == "2026-09-30"
