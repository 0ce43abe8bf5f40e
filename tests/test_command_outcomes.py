"""The commands' entry functions: what each command prints and the exit code it ends with, decided
in the library (the CLI only prints and exits). The work they call is stood in for here; the
commands run for real in tests/test_retrain.py, tests/airflow and tests/test_testrun.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nbops import retrain, tasks, testrun
from nbops.errors import InputError
from nbops.monitor import TriggerCheck
from nbops.provenance import Closed
from nbops.scaffold import Scaffold
from nbops.status import ExitCode, PipelineOutcome
from nbops.testrun import TestOptions, TestReport
from nbops.tracking.gate import Decision, GateResult, Reason

pytestmark = pytest.mark.unit


def gate_result(decision: Decision, reason: Reason = Reason.WON) -> GateResult:
    return GateResult(model="clf", metric="auc", rule="auc up by 0.01", decision=decision, reason=reason, message="m")


def pipeline(approval: str | None) -> Any:
    retrain_block = SimpleNamespace(approval=approval) if approval else None
    return SimpleNamespace(spec=SimpleNamespace(retrain=retrain_block))


@pytest.fixture
def targets(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path | None, str | None]]:
    """``load_target`` calls; the target is a pipeline with manual approval."""
    calls: list[tuple[Path | None, str | None]] = []

    def load(pipeline_file: Path | None, promoted: str | None) -> tuple[Any, Any, str]:
        calls.append((pipeline_file, promoted))
        return pipeline("manual"), object(), "sqlite:///x.db"

    monkeypatch.setattr(retrain, "load_target", load)
    monkeypatch.setattr(tasks, "load_target", load)
    monkeypatch.setattr(retrain, "open_client", lambda uri: object())
    return calls


# -- gate --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decision", "promoted", "code"),
    [
        (Decision.FAILED, None, ExitCode.NOTEBOOK),
        (Decision.FAILED, "abc", ExitCode.NOTEBOOK),
        (Decision.PROMOTED, None, ExitCode.OK),
        (Decision.KEPT, None, ExitCode.OK),  # only a DAG's approval task is skipped
        (Decision.AWAITING_APPROVAL, "abc", ExitCode.OK),
        (Decision.KEPT, "abc", ExitCode.SKIP),
        (Decision.PROMOTED, "abc", ExitCode.SKIP),
    ],
)
def test_the_gate_s_exit_code(
    targets: list[Any], monkeypatch: pytest.MonkeyPatch, decision: Decision, promoted: str | None, code: int
) -> None:
    result = gate_result(decision)
    monkeypatch.setattr(retrain, "run_gate", lambda client, pipeline, uri, run_id: result)
    outcome = retrain.gate_command(Path("p.yaml"), "r1", promoted)
    assert outcome.exit_code == code and outcome.result is result
    assert targets == [(None, "abc") if promoted else (Path("p.yaml"), None)]
    lines = outcome.message.splitlines()
    assert lines[0] == retrain.describe(result)
    skipped = ["nbops gate: nothing awaits approval; the approval task is skipped."]
    assert lines[1:] == (skipped if code == ExitCode.SKIP else [])


def test_with_automatic_approval_a_dag_s_gate_is_never_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retrain, "load_target", lambda file, promoted: (pipeline("auto"), object(), "u"))
    monkeypatch.setattr(retrain, "open_client", lambda uri: object())
    monkeypatch.setattr(retrain, "run_gate", lambda *args: gate_result(Decision.KEPT, Reason.LOST))
    assert retrain.gate_command(Path("p.yaml"), "r1", "abc").exit_code == ExitCode.OK


# -- approve -----------------------------------------------------------------------------------


def test_approve_in_the_working_tree(targets: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    result = gate_result(Decision.REJECTED)

    def approve(client: Any, pipeline: Any, uri: str, run_id: str | None, reject: bool = False) -> GateResult:
        seen.update(run_id=run_id, reject=reject)
        return result

    monkeypatch.setattr(retrain, "approve", approve)
    outcome = retrain.approve_command(Path("p.yaml"), None, True, None)
    assert (outcome.exit_code, outcome.message, outcome.result) == (ExitCode.OK, retrain.describe(result), result)
    assert seen == {"run_id": None, "reject": True} and targets == [(Path("p.yaml"), None)]


def test_approve_in_a_dag(targets: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retrain, "applied_approval", lambda client, pipeline, uri, run_id: None)
    outcome = retrain.approve_command(Path("p.yaml"), "r1", False, "abc")
    assert outcome.exit_code == ExitCode.OK and outcome.result is None
    assert outcome.message == "nbops approve: run r1: nothing awaits approval (the gate kept the champion)."
    assert targets == [(None, "abc")]
    for run_id, reject in ((None, False), ("r1", True)):
        with pytest.raises(InputError, match="--promoted needs --run-id and takes no --reject"):
            retrain.approve_command(Path("p.yaml"), run_id, reject, "abc")


# -- drift-check, close-run --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "holds", "code"),
    [(0.3, True, ExitCode.OK), (0.1, False, ExitCode.SKIP), (None, False, ExitCode.NOTEBOOK)],
)
def test_the_drift_check_s_exit_code(
    targets: list[Any], monkeypatch: pytest.MonkeyPatch, value: float | None, holds: bool, code: int
) -> None:
    check = TriggerCheck(rule="drift > 0.2", value=value, holds=holds, message="drift = 0.3; trigger holds")
    monkeypatch.setattr(tasks, "drift_check", lambda store, pipeline, uri, run_id: check)
    outcome = tasks.drift_check_command("abc", "m1")
    assert (outcome.exit_code, outcome.check) == (code, check)
    assert outcome.message == "nbops drift-check: drift = 0.3; trigger holds"
    assert targets == [(None, "abc")]


def test_close_run_reads_the_dag_run_and_reports_each_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    closed = Closed("p1", PipelineOutcome.FAILED, {"load": "succeeded", "fit": "killed"}, orphans=("s9",))

    def close(store: Any, uri: str, lock_sha256: str, run_id: str, airflow: Any) -> Closed:
        seen.update(store=store.url, lock=lock_sha256, run_id=run_id, dag=airflow.dag_id)
        return closed

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tasks, "close_promoted_run", close)
    outcome = tasks.close_run_command("abc", "r1", '{"dag_id": "two", "run_id": "r1"}')
    assert outcome.exit_code == ExitCode.OK and outcome.closed is closed
    assert (seen["lock"], seen["run_id"], seen["dag"]) == ("abc", "r1", "two")
    assert outcome.message.splitlines() == [
        "  load: succeeded",
        "  fit: killed",
        "closed 1 stage record(s) left open as KILLED",
        "nbops close-run: run r1 failed (MLflow run p1)",
    ]
    with pytest.raises(InputError):
        tasks.close_run_command("abc", "r1", "[1]")


# -- test, init --------------------------------------------------------------------------------


def test_the_test_command_tells_problems_mismatches_monitor_and_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    report = TestReport(
        exit_code=ExitCode.NOTEBOOK,
        problems=["stage 'fit' failed (exit 1): cell 2 raised"],
        mismatches={"fit": [SimpleNamespace(describe=lambda: "cell 3: output differs")]},  # type: ignore[list-item]
        monitor="quiet: drift = 0.1",
        kept=Path("/tmp/nbops-test-x"),
    )
    monkeypatch.setattr("nbops.testrun.test_pipeline", lambda options: report)
    outcome = testrun.test_command(TestOptions(pipeline_file=Path("p.yaml")))
    assert outcome.exit_code == ExitCode.NOTEBOOK and outcome.report is report
    assert outcome.message.split("\n") == [
        "",
        "stage 'fit' failed (exit 1): cell 2 raised",
        "",
        "stage 'fit': 1 output(s) differ from the notebook's stored outputs:",
        "  - cell 3: output differs",
        "nbops test: monitor quiet: drift = 0.1",
        "nbops test: the throwaway store is kept for reading: /tmp/nbops-test-x",
        "nbops test: p.yaml failed (exit 1)",
    ]
    monkeypatch.setattr("nbops.testrun.test_pipeline", lambda options: TestReport())
    assert testrun.test_command(TestOptions(pipeline_file=Path("p.yaml"))).message == "nbops test: p.yaml passed"


@pytest.mark.parametrize(("root", "where"), [(Path("."), ""), (Path("proj"), "cd proj && ")])
def test_init_names_each_file_and_the_next_steps(root: Path, where: str) -> None:
    made = Scaffold(root, "proj", (root / "pipeline.yaml", root / "Dockerfile"))
    assert made.describe().splitlines() == [
        f"wrote {root / 'pipeline.yaml'}",
        f"wrote {root / 'Dockerfile'}",
        f"nbops init: project 'proj' ready. Next: {where}nbops run   (then: nbops promote; "
        "docker build -t proj-runner:0.1 .)",
    ]
