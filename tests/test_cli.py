"""The CLI is thin: each command builds a request, calls one library function, prints what it
returns and maps its outcome and errors to exit codes. Each test patches that one function where
the command looks it up."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner, Result

from nbops.cli import main
from nbops.errors import InfraError, InputError
from nbops.runner.state import RunSummary
from nbops.stage.result import StageResult
from nbops.status import ExitCode, StageStatus

pytestmark = pytest.mark.unit


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def recording(seen: dict[str, Any], returns: Any) -> Any:
    """A stand-in for a library function: records its arguments, returns ``returns``."""

    def fake(*args: Any, **kwargs: Any) -> Any:
        seen["args"], seen["kwargs"] = args, kwargs
        if isinstance(returns, BaseException):
            raise returns
        return returns

    return fake


def outcome(message: str, code: int) -> SimpleNamespace:
    return SimpleNamespace(message=message, exit_code=code)


# -- run ---------------------------------------------------------------------------------------


def test_run_builds_options(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake(options: Any) -> RunSummary:
        seen["options"] = options
        return RunSummary(run_id="r", exit_code=0)

    monkeypatch.setattr("nbops.runs.run", fake)
    args = ["run", "p.yaml", "--from", "train", "-p", "train.C=2", "-j", "3", "--retry-delay", "0.5"]
    result = CliRunner().invoke(main, [*args, "--progress", "plain"])
    assert result.exit_code == 0, result.output
    options = seen["options"]
    assert (options.pipeline_file, options.from_stage, options.params, options.jobs, options.retry_delay) == (
        Path("p.yaml"),
        "train",
        ("train.C=2",),
        3,
        0.5,
    )
    assert options.progress == "plain"
    CliRunner().invoke(main, args)
    assert seen["options"].progress == "auto"
    refused = CliRunner().invoke(main, [*args, "--progress", "sometimes"])
    assert refused.exit_code == 2 and "--progress" in refused.output


def test_run_passes_the_checked_run_date_and_forced_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr("nbops.runs.run", recording(seen, RunSummary(run_id="r", exit_code=1)))
    result = invoke("run", "p.yaml", "--run-date", "2026-01-02", "--force", "train", "--run-id", "r1")
    assert result.exit_code == 1
    (options,) = seen["args"]
    assert (options.run_date, options.force, options.run_id) == ("2026-01-02", ("train",), "r1")
    called: dict[str, Any] = {}
    monkeypatch.setattr("nbops.runs.run", recording(called, RunSummary(run_id="r")))
    refused = invoke("run", "--run-date", "yesterday")
    assert refused.exit_code == 2 and "--run-date" in refused.output and not called


def test_run_interrupted_before_the_runner_took_over_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(options: Any) -> RunSummary:
        raise KeyboardInterrupt

    monkeypatch.setattr("nbops.runs.run", fake)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 3
    assert "nothing ran" in result.output


@pytest.mark.parametrize(("error", "code"), [(InputError("bad spec"), 2), (InfraError("store down"), 3)])
def test_run_maps_errors_to_exit_codes(monkeypatch: pytest.MonkeyPatch, error: Exception, code: int) -> None:
    def fake(options: Any) -> RunSummary:
        raise error

    monkeypatch.setattr("nbops.runs.run", fake)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == code
    assert str(error) in result.output


# -- exec-stage --------------------------------------------------------------------------------


def test_exec_stage_writes_result_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def fake(request: Any) -> StageResult:
        seen["request"] = request
        return StageResult(stage="s", run_id="r", status=StageStatus.FAILED, message="cell 2 raised")

    monkeypatch.setattr("nbops.plugins.exec_stage", fake)
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


# -- lint, init, test, promote -----------------------------------------------------------------


def test_lint_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nbops.lint.lint", lambda path: ["nb.ipynb: problem one", "nb.ipynb: problem two"])
    result = CliRunner().invoke(main, ["lint", "p.yaml"])
    assert result.exit_code == 2
    assert "2 problem(s)" in result.output and "problem two" in result.output
    monkeypatch.setattr("nbops.lint.lint", lambda path: [])
    assert CliRunner().invoke(main, ["lint", "p.yaml"]).exit_code == 0


def test_init_prints_what_the_scaffold_says(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbops.scaffold import Scaffold

    seen: dict[str, Any] = {}
    made = Scaffold(Path("proj"), "proj", (Path("proj/pipeline.yaml"),))
    monkeypatch.setattr("nbops.scaffold.init_project", recording(seen, made))
    result = invoke("init", "proj", "--name", "demo")
    assert result.exit_code == 0, result.output
    assert seen["args"] == (Path("proj"), "demo")
    assert result.output == made.describe() + "\n"
    assert "wrote proj/pipeline.yaml" in result.output and "cd proj && nbops run" in result.output
    monkeypatch.setattr("nbops.scaffold.init_project", recording({}, InputError("pipeline.yaml already exist(s)")))
    refused = invoke("init", "proj")
    assert refused.exit_code == 2 and "nbops: error: pipeline.yaml already exist(s)" in refused.output


@pytest.mark.parametrize("code", [ExitCode.OK, ExitCode.NOTEBOOK, ExitCode.INPUT])
def test_test_prints_the_outcome_on_stderr_and_exits_with_its_code(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr("nbops.testrun.test_command", recording(seen, outcome("nbops test: p.yaml passed", code)))
    result = CliRunner().invoke(main, ["test", "p.yaml", "--nbval", "-j", "2"])
    assert result.exit_code == code
    (options,) = seen["args"]
    assert (options.pipeline_file, options.nbval, options.jobs) == (Path("p.yaml"), True, 2)
    assert result.stderr == "nbops test: p.yaml passed\n" and result.stdout == ""


def test_promote_passes_the_dags_dir_and_prints_the_report(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    report = SimpleNamespace(describe=lambda: "published x\nnbops promote: lock abc")
    monkeypatch.setattr("nbops.promote.promote", recording(seen, report))
    result = invoke("promote", "p.yaml")
    assert result.exit_code == 0, result.output
    assert seen["args"] == (Path("p.yaml"), None)  # the default, dags/ beside the pipeline file, is promote's
    assert result.output == "published x\nnbops promote: lock abc\n"
    invoke("promote", "p.yaml", "--dags-dir", "out")
    assert seen["args"] == (Path("p.yaml"), Path("out"))
    monkeypatch.setattr("nbops.promote.promote", recording(seen, InputError("2 problem(s); nothing promoted")))
    assert invoke("promote", "p.yaml").exit_code == 2


# -- the DAG's tasks: close-run, gate, approve, drift-check ------------------------------------


def test_close_run_prints_on_stderr_and_exits_with_the_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    said = "  train: succeeded\nnbops close-run: run r1 succeeded (MLflow run m)"
    monkeypatch.setattr("nbops.tasks.close_run_command", recording(seen, outcome(said, ExitCode.OK)))
    args = ["close-run", "--promoted", "abc", "--run-id", "r1", "--airflow-json", '{"dag_id": "d"}']
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0
    assert seen["args"] == ("abc", "r1", '{"dag_id": "d"}')
    assert result.stderr == said + "\n" and result.stdout == ""
    invoke("close-run", "--promoted", "abc", "--run-id", "r1")
    assert seen["args"] == ("abc", "r1", "{}")
    monkeypatch.setattr("nbops.tasks.close_run_command", recording(seen, InfraError("tracking store down")))
    assert invoke("close-run", "--promoted", "abc", "--run-id", "r1").exit_code == 3


@pytest.mark.parametrize("code", [ExitCode.OK, ExitCode.NOTEBOOK, ExitCode.SKIP])
def test_gate_passes_its_options_and_exits_with_the_outcome(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr("nbops.retrain.gate_command", recording(seen, outcome("gate clf: kept (lost): ...", code)))
    result = invoke("gate", "p.yaml", "--run-id", "r1", "--promoted", "abc")
    assert result.exit_code == code
    assert seen["args"] == (Path("p.yaml"), "r1", "abc")
    assert result.output == "gate clf: kept (lost): ...\n"
    invoke("gate", "p.yaml", "--run-id", "r1")
    assert seen["args"] == (Path("p.yaml"), "r1", None)


def test_gate_maps_errors_to_exit_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nbops.retrain.gate_command", recording({}, InputError("no `retrain:` block")))
    result = invoke("gate", "p.yaml", "--run-id", "r1")
    assert result.exit_code == 2 and "nbops: error: no `retrain:` block" in result.output


def test_approve_passes_its_options_and_prints_the_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr("nbops.retrain.approve_command", recording(seen, outcome("gate clf: rejected", ExitCode.OK)))
    result = invoke("approve", "p.yaml", "--run-id", "r1", "--reject")
    assert result.exit_code == 0 and result.output == "gate clf: rejected\n"
    assert seen["args"] == (Path("p.yaml"), "r1", True, None)
    invoke("approve", "p.yaml", "--promoted", "abc", "--run-id", "r2")
    assert seen["args"] == (Path("p.yaml"), "r2", False, "abc")
    monkeypatch.setattr("nbops.retrain.approve_command", recording(seen, InputError("no version awaits approval")))
    refused = invoke("approve", "p.yaml")
    assert refused.exit_code == 2 and "no version awaits approval" in refused.output


@pytest.mark.parametrize("code", [ExitCode.OK, ExitCode.NOTEBOOK, ExitCode.SKIP])
def test_drift_check_exits_with_the_outcome(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    seen: dict[str, Any] = {}
    said = "nbops drift-check: drift = 0.3; trigger drift > 0.2 holds"
    monkeypatch.setattr("nbops.tasks.drift_check_command", recording(seen, outcome(said, code)))
    result = invoke("drift-check", "--promoted", "abc", "--run-id", "m1")
    assert result.exit_code == code
    assert seen["args"] == ("abc", "m1")
    assert result.output == said + "\n"


def test_sweep_points_prints_the_pod_names_as_json_and_maps_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbops.tasks import SweepPoints

    seen: dict[str, Any] = {}
    listed = SweepPoints("nbops sweep-points: stage 'fit' sweeps 2 point(s)", ["p-fit-0", "p-fit-1"])
    monkeypatch.setattr("nbops.tasks.sweep_points_command", recording(seen, listed))
    args = ["sweep-points", "--promoted", "abc", "--stage", "fit", "--run-id", "r1", "--pod-name", "p-fit"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and seen["args"] == ("abc", "fit", "r1", "p-fit")
    assert json.loads(result.stdout) == ["p-fit-0", "p-fit-1"] and "sweeps 2 point(s)" in result.stderr
    monkeypatch.setattr("nbops.tasks.sweep_points_command", recording({}, InputError("regions.json: not a list")))
    assert CliRunner().invoke(main, args).exit_code == 2


def test_drift_check_maps_errors_to_exit_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nbops.tasks.drift_check_command", recording({}, InputError("no completed monitor attempt")))
    result = invoke("drift-check", "--promoted", "abc", "--run-id", "m1")
    assert result.exit_code == 2 and "no completed monitor attempt" in result.output


def test_monitor_builds_options_and_exits_with_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbops.monitor import MonitorOutcome, MonitorResult

    seen: dict[str, Any] = {}
    done = MonitorResult(outcome=MonitorOutcome.QUIET, exit_code=0, message="drift = 0.1; trigger does not hold")
    monkeypatch.setattr("nbops.monitor.run_monitor", recording(seen, done))
    args = ["monitor", "p.yaml", "-p", "monitor.k=2", "--run-date", "2026-01-02", "--dry-run", "-j", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0
    (options,) = seen["args"]
    assert (options.pipeline_file, options.params, options.run_date, options.dry_run, options.jobs) == (
        Path("p.yaml"),
        ("monitor.k=2",),
        "2026-01-02",
        True,
        2,
    )
    assert result.stderr == "nbops monitor: quiet: drift = 0.1; trigger does not hold\n"
    failed = MonitorResult(outcome=MonitorOutcome.FAILED, exit_code=1, message="cell 2 raised")
    monkeypatch.setattr("nbops.monitor.run_monitor", recording(seen, failed))
    assert invoke("monitor", "p.yaml").exit_code == 1


# -- audit, serve, ui --------------------------------------------------------------------------


def _report(ok: bool) -> SimpleNamespace:
    return SimpleNamespace(
        to_text=lambda: "audit: 3 checks, all passed\n",
        to_json=lambda: '{"schema": "nbops.audit/1"}\n',
        exit_code=ExitCode.OK if ok else ExitCode.AUDIT,
    )


@pytest.mark.parametrize(("ok", "code"), [(True, 0), (False, 4)])
def test_audit_passes_targets_and_exits_with_the_report(monkeypatch: pytest.MonkeyPatch, ok: bool, code: int) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr("nbops.audit.audit_command", recording(seen, _report(ok)))
    result = invoke("audit", "clf@champion", "other/pipeline.yaml")
    assert result.exit_code == code
    assert seen["args"] == (("clf@champion", "other/pipeline.yaml"),)
    assert seen["kwargs"] == {"run_id": None, "pipeline_file": None, "html_file": None}
    assert result.output == "audit: 3 checks, all passed\n"


def test_audit_json_and_html(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr("nbops.audit.audit_command", recording(seen, _report(True)))
    args = ["audit", "--run", "r1", "--pipeline", "p.yaml", "--json", "--html", "out.html"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0
    assert seen["args"] == ((),)
    assert seen["kwargs"] == {"run_id": "r1", "pipeline_file": Path("p.yaml"), "html_file": Path("out.html")}
    assert result.stdout == '{"schema": "nbops.audit/1"}\n'
    assert result.stderr == "nbops audit: wrote out.html\n"


def test_audit_maps_errors_to_exit_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nbops.audit.audit_command", recording({}, InputError("give exactly one of MODEL")))
    result = invoke("audit")
    assert result.exit_code == 2 and "give exactly one of MODEL" in result.output
    monkeypatch.setattr("nbops.audit.audit_command", recording({}, InfraError("cannot read")))
    assert invoke("audit", "clf/1").exit_code == 3


class _Diff:
    def __init__(self, code: int) -> None:
        self.exit_code = code

    def to_text(self) -> str:
        return "nbops diff p: ...\n"

    def to_json(self) -> str:
        return '{"schema": "nbops.diff/1"}'

    def to_html(self) -> str:
        return '<meta name="generator" content="nbops diff">'


@pytest.mark.parametrize("code", [0, 1])
def test_diff_passes_runs_and_exits_with_the_result(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr("nbops.attempts.diff.diff_runs", recording(seen, _Diff(code)))
    result = invoke("diff", "r1", "r2", "--stage", "fit", "--pipeline", "p.yaml")
    assert result.exit_code == code
    assert seen["args"] == (Path("p.yaml"), "r1", "r2", "fit")
    assert result.output == "nbops diff p: ...\n"


def test_diff_json_html_and_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("nbops.attempts.diff.diff_runs", recording({}, _Diff(1)))
    page = tmp_path / "d.html"
    result = invoke("diff", "r1", "r2", "--json", "--html", str(page))
    assert result.exit_code == 1 and result.stdout == '{"schema": "nbops.diff/1"}\n'
    assert result.stderr == f"nbops diff: wrote {page}\n" and "nbops diff" in page.read_text()
    monkeypatch.setattr("nbops.attempts.diff.diff_runs", recording({}, InputError("run 'x': no such run")))
    assert invoke("diff", "x", "r2").exit_code == 2
    monkeypatch.setattr("nbops.attempts.diff.diff_runs", recording({}, InfraError("cannot read")))
    assert invoke("diff", "r1", "r2").exit_code == 3


@pytest.mark.parametrize(
    ("module", "args", "expected"),
    [
        (
            "nbops.serve.serve_command",
            ["serve", "clf@champion", "p.yaml", "--port", "5002"],
            (("clf@champion", "p.yaml"), 5002),
        ),
        ("nbops.serve.serve_command", ["serve"], ((), 5001)),
        ("nbops.ui.serve", ["ui", "p.yaml", "--port", "5003"], (Path("p.yaml"), 5003)),
    ],
)
def test_servers_pass_their_options_and_exit_with_the_code_they_return(
    monkeypatch: pytest.MonkeyPatch, module: str, args: list[str], expected: tuple[Any, ...]
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(module, recording(seen, 3))
    assert invoke(*args).exit_code == 3
    assert seen["args"] == expected
    monkeypatch.setattr(module, recording(seen, KeyboardInterrupt()))
    assert invoke(*args).exit_code == 0  # Ctrl-C before the server's own handling: stopped, not failed
    monkeypatch.setattr(module, recording(seen, InputError("port 5001 is in use")))
    refused = invoke(*args)
    assert refused.exit_code == 2 and "nbops: error: port 5001 is in use" in refused.output


def test_verify_model_passes_its_arguments_prints_the_verdict_and_maps_a_mismatch_to_4(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nbops.errors import EvidenceError

    seen: dict[str, Any] = {}
    monkeypatch.setattr("nbops.serve.verify_model", recording(seen, "nbops verify-model: m version 3: files as sealed"))
    result = invoke("verify-model", "m@champion", "p.yaml", "--to", "out")
    assert result.exit_code == 0 and result.output == "nbops verify-model: m version 3: files as sealed\n"
    assert seen["args"] == ("m@champion", Path("out"), Path("p.yaml"))
    monkeypatch.setattr("nbops.serve.verify_model", recording(seen, EvidenceError("model.pkl was altered")))
    refused = invoke("verify-model", "m/3")
    assert refused.exit_code == 4 and "model.pkl was altered" in refused.output


# -- the process -------------------------------------------------------------------------------


def test_as_the_process_command_exit_skips_only_the_module_teardown(monkeypatch: pytest.MonkeyPatch) -> None:
    import atexit
    import os

    from nbops.cli import base

    ran: list[str] = []

    def fast_exit(code: int) -> None:
        raise SystemExit(("without teardown", code))

    monkeypatch.setattr(os, "_exit", fast_exit)
    monkeypatch.setattr(atexit, "_run_exitfuncs", lambda: ran.append("exit handlers"))
    monkeypatch.setitem(base.PROCESS, "entry", True)
    with pytest.raises(SystemExit) as caught:
        base.exit_process(3)
    assert caught.value.code == ("without teardown", 3) and ran == ["exit handlers"]
    monkeypatch.setitem(base.PROCESS, "entry", False)  # in-process (tests, library callers): a plain exit
    with pytest.raises(SystemExit) as caught:
        base.exit_process(2)
    assert caught.value.code == 2 and ran == ["exit handlers"]


def test_entry_marks_the_process_as_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbops import cli
    from nbops.cli import base

    monkeypatch.setitem(base.PROCESS, "entry", False)
    monkeypatch.setattr("sys.argv", ["nbops", "--version"])
    with pytest.raises(SystemExit) as caught:
        cli.entry()
    assert caught.value.code == 0 and base.PROCESS["entry"] is True


def test_every_command_is_registered() -> None:
    assert sorted(main.commands) == [
        "approve",
        "audit",
        "close-run",
        "debug",
        "diff",
        "drift-check",
        "exec-stage",
        "gate",
        "init",
        "lint",
        "logs",
        "monitor",
        "promote",
        "run",
        "serve",
        "sweep-points",
        "test",
        "ui",
        "verify-model",
    ]


def test_logs_passes_its_options_and_exits_with_what_following_ended_with(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbops.attempts.logs import Followed

    seen: dict[str, Any] = {}

    def logs_command(stage: str, **kwargs: Any) -> Followed:
        seen.update(kwargs, stage=stage)
        kwargs["write"]("[0] In [1]: x = 1\n")
        return Followed(3, "a newer attempt started")

    monkeypatch.setattr("nbops.attempts.logs.logs_command", logs_command)
    args = ["logs", "train", "--run", "r1", "--attempt", "2", "--point", "1", "-f", "--timeout", "5"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 3
    assert result.stdout == "[0] In [1]: x = 1\n" and "nbops: a newer attempt started" in result.stderr
    assert {k: seen[k] for k in ("stage", "run", "number", "point", "follow", "timeout")} == {
        "stage": "train",
        "run": "r1",
        "number": 2,
        "point": 1,
        "follow": True,
        "timeout": 5.0,
    }


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
