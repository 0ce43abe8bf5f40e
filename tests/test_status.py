"""One enum owns every outcome: exit code, MLflow status, retryability, message."""

from __future__ import annotations

import pytest

from nbops.errors import InfraError, InputError
from nbops.status import ExitCode, PipelineOutcome, RunStatus, StageState, StageStatus

pytestmark = pytest.mark.unit


def test_exit_codes_are_the_documented_table() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 99]
    assert [c for c in ExitCode if c.retryable] == [ExitCode.INFRA]
    assert ExitCode.of(-9) is ExitCode.INFRA  # killed by a signal
    assert ExitCode.of(137) is ExitCode.INFRA
    assert ExitCode.of(1) is ExitCode.NOTEBOOK


@pytest.mark.parametrize(
    ("status", "code", "mlflow", "retry"),
    [
        (StageStatus.SUCCEEDED, 0, "FINISHED", False),
        (StageStatus.STOPPED, 0, "FINISHED", False),
        (StageStatus.FAILED, 1, "FAILED", False),
        (StageStatus.CELL_TIMED_OUT, 1, "FAILED", False),
        (StageStatus.STAGE_TIMED_OUT, 1, "FAILED", False),
        (StageStatus.KERNEL_DIED, 3, "FAILED", True),
        (StageStatus.KILLED, 3, "KILLED", True),
        (StageStatus.INPUT_ERROR, 2, "FAILED", False),
        (StageStatus.INFRA_FAILED, 3, "FAILED", True),
        (StageStatus.UPLOAD_FAILED, 3, "FAILED", True),
        (StageStatus.SEAL_FAILED, 3, "FAILED", True),
        (StageStatus.CACHED, 0, "FINISHED", False),
        (StageStatus.SKIPPED, 99, "FAILED", False),
    ],
)
def test_each_outcome_owns_its_code_status_and_retry(status: StageStatus, code: int, mlflow: str, retry: bool) -> None:
    assert (int(status.exit_code), status.mlflow_status, status.retryable) == (code, mlflow, retry)
    assert status.succeeded is (code == 0)
    assert status.message(cell="cell 3", ename="E", evalue="v", limit=5)  # every outcome can say what happened


def test_messages_name_the_cell_and_the_limit() -> None:
    assert StageStatus.FAILED.message(cell="cell 2 (In [3])", ename="ValueError", evalue="bad") == (
        "cell 2 (In [3]) raised ValueError: bad"
    )
    assert "stage timeout of 5 s" in StageStatus.STAGE_TIMED_OUT.message(cell="cell 1", limit=5)
    assert "(SIGINT)" in StageStatus.KILLED.message(cell="cell 1", signal="SIGINT")


def test_errors_read_retryability_off_their_exit_code() -> None:
    assert InfraError("x").retryable and InfraError("x").exit_code is ExitCode.INFRA
    assert not InputError("x").retryable and InputError("x").exit_code is ExitCode.INPUT


@pytest.mark.parametrize(
    ("stages", "stopped", "outcome", "mlflow"),
    [
        (["succeeded", "cached", "stopped"], False, PipelineOutcome.SUCCEEDED, "FINISHED"),
        (["succeeded", "failed", "not run"], False, PipelineOutcome.FAILED, "FAILED"),
        (["succeeded", "killed", "failed"], False, PipelineOutcome.KILLED, "KILLED"),
        (["succeeded", "succeeded"], True, PipelineOutcome.KILLED, "KILLED"),
        (["succeeded", None], False, PipelineOutcome.FAILED, "FAILED"),
        (["succeeded", "FINISHED"], False, PipelineOutcome.FAILED, "FAILED"),  # never tagged by nbops
        ([], False, PipelineOutcome.SUCCEEDED, "FINISHED"),
    ],
)
def test_one_rule_decides_a_pipeline_run_on_every_backend(
    stages: list[str | None], stopped: bool, outcome: PipelineOutcome, mlflow: str
) -> None:
    decided = PipelineOutcome.of(stages, stopped=stopped)
    assert (decided, decided.mlflow_status, decided.value) == (outcome, mlflow, outcome.value)


def test_the_runner_s_view_of_a_stage_is_one_enum() -> None:
    assert {s for s in StageState if s.done} == {StageState.SUCCEEDED, StageState.CACHED}
    assert {s for s in StageState if s.failed} == {StageState.FAILED, StageState.KILLED}
    active = {StageState.PENDING, StageState.EARLY, StageState.WAITING, StageState.RUNNING}
    assert {s for s in StageState if s.active} == active
    assert not any(s.done and (s.active or s.failed) for s in StageState)
    assert len(StageState) == 9


def test_mlflow_statuses_are_spelled_once_and_an_exit_code_without_a_result_reads_back() -> None:
    assert [s.value for s in RunStatus] == ["RUNNING", "FINISHED", "FAILED", "KILLED"]
    assert StageStatus.of_exit(0) is StageStatus.SUCCEEDED
    assert StageStatus.of_exit(1) is StageStatus.FAILED
    assert StageStatus.of_exit(2) is StageStatus.INPUT_ERROR
    assert StageStatus.of_exit(-9) is StageStatus.INFRA_FAILED
