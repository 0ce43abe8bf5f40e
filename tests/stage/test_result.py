"""The stage result travels as JSON from the stage command to the runner."""

from __future__ import annotations

import json

import pytest

from nbops.stage.result import StageResult
from nbops.status import StageStatus

pytestmark = pytest.mark.unit


def test_result_round_trips_and_carries_its_exit_code() -> None:
    result = StageResult(
        stage="s",
        run_id="r",
        status=StageStatus.KERNEL_DIED,
        attempt=2,
        mlflow_run_id="abc",
        failed_cell=3,
        phases={"prepare": 0.2, "run": 1.5},
    )
    text = result.to_json()
    assert json.loads(text)["exit_code"] == 3
    assert json.loads(text)["status"] == "kernel_died"
    assert StageResult.from_json(text) == result


@pytest.mark.parametrize("text", ["[]", '{"stage": "s", "run_id": "r", "status": "exploded"}', "{nope"])
def test_foreign_results_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        StageResult.from_json(text)
