"""The CLI is thin: it builds a request, calls one function and maps errors to exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from nbops.cli import main
from nbops.errors import InfraError, InputError
from nbops.runner.local import RunSummary
from nbops.stage.command import StageResult
from nbops.status import StageStatus

pytestmark = pytest.mark.unit


def test_run_builds_options(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake(options: Any) -> RunSummary:
        seen["options"] = options
        return RunSummary(run_id="r", exit_code=0)

    monkeypatch.setattr("nbops.runner.local.run_pipeline", fake)
    args = ["run", "p.yaml", "--from", "train", "-p", "train.C=2", "-j", "3", "--retry-delay", "0.5"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    options = seen["options"]
    assert (options.pipeline_file, options.from_stage, options.params, options.jobs, options.retry_delay) == (
        Path("p.yaml"),
        "train",
        ("train.C=2",),
        3,
        0.5,
    )


def test_run_interrupted_before_the_runner_took_over_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(options: Any) -> RunSummary:
        raise KeyboardInterrupt

    monkeypatch.setattr("nbops.runner.local.run_pipeline", fake)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 3
    assert "nothing ran" in result.output


@pytest.mark.parametrize(("error", "code"), [(InputError("bad spec"), 2), (InfraError("store down"), 3)])
def test_run_maps_errors_to_exit_codes(monkeypatch: pytest.MonkeyPatch, error: Exception, code: int) -> None:
    def fake(options: Any) -> RunSummary:
        raise error

    monkeypatch.setattr("nbops.runner.local.run_pipeline", fake)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == code
    assert str(error) in result.output


def test_exec_stage_writes_result_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def fake(request: Any) -> StageResult:
        seen["request"] = request
        return StageResult(stage="s", run_id="r", status=StageStatus.FAILED, message="cell 2 raised")

    monkeypatch.setattr("nbops.stage.command.exec_stage", fake)
    out = tmp_path / "result.json"
    args = ["exec-stage", "--pipeline", "p.yaml", "--stage", "s", "--run-id", "r", "--params-json", '{"n": 2}']
    result = CliRunner().invoke(main, [*args, "--result-file", str(out)])
    assert result.exit_code == 1
    assert seen["request"].params == {"n": 2}
    assert json.loads(out.read_text())["status"] == "failed"


@pytest.mark.parametrize("params", ["{nope", "[1, 2]"])
def test_exec_stage_rejects_bad_params_json(params: str) -> None:
    result = CliRunner().invoke(
        main, ["exec-stage", "--pipeline", "p.yaml", "--stage", "s", "--run-id", "r", "--params-json", params]
    )
    assert result.exit_code == 2
    assert "--params-json" in result.output


def test_lint_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nbops.lint.lint", lambda path: ["nb.ipynb: problem one", "nb.ipynb: problem two"])
    result = CliRunner().invoke(main, ["lint", "p.yaml"])
    assert result.exit_code == 2
    assert "2 problem(s)" in result.output and "problem two" in result.output
    monkeypatch.setattr("nbops.lint.lint", lambda path: [])
    assert CliRunner().invoke(main, ["lint", "p.yaml"]).exit_code == 0


def test_as_the_process_command_exit_skips_only_the_module_teardown(monkeypatch: pytest.MonkeyPatch) -> None:
    import atexit
    import os

    from nbops import cli

    ran: list[str] = []

    def fast_exit(code: int) -> None:
        raise SystemExit(("without teardown", code))

    monkeypatch.setattr(os, "_exit", fast_exit)
    monkeypatch.setattr(atexit, "_run_exitfuncs", lambda: ran.append("exit handlers"))
    monkeypatch.setitem(cli._PROCESS, "entry", True)
    with pytest.raises(SystemExit) as caught:
        cli._exit_process(3)
    assert caught.value.code == ("without teardown", 3) and ran == ["exit handlers"]
    monkeypatch.setitem(cli._PROCESS, "entry", False)  # in-process (tests, library callers): a plain exit
    with pytest.raises(SystemExit) as caught:
        cli._exit_process(2)
    assert caught.value.code == 2 and ran == ["exit handlers"]


@pytest.mark.integration
def test_commands_find_the_pipeline_above_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from ``notebooks/``: lint, promote (and run, ui) use the project's pipeline.yaml, and
    promote writes dags/ beside it, not under the working directory."""
    from nbops.scaffold import init_project

    made = init_project(tmp_path / "proj")
    monkeypatch.chdir(made.root / "notebooks")
    monkeypatch.delenv("NBOPS_PIPELINE_FILE", raising=False)
    linted = CliRunner().invoke(main, ["lint"])
    assert linted.exit_code == 0, linted.output
    assert f"{made.root / 'pipeline.yaml'} is clean" in linted.output
    promoted = CliRunner().invoke(main, ["promote"])
    assert promoted.exit_code == 0, promoted.output
    assert (made.root / "dags" / "proj.py").is_file() and not (made.root / "notebooks" / "dags").exists()
