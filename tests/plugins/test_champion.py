"""The monitor's inputs slot: the champion's run, or a skip (exit 99) before the first champion."""

from __future__ import annotations

import pytest

from tests.conftest import Project

MONITOR = [("x = 1", ["parameters"]), ("drift = 0.0", ["metrics"])]


@pytest.mark.integration
def test_the_monitor_stage_before_any_champion_is_a_skip_not_a_failure(project: Project) -> None:
    """What a monitor DAG unpaused on a fresh deployment runs first: nothing to compare with yet."""
    project.write_spec(
        {
            "name": "fresh",
            "stages": {"train": {"notebook": project.add_notebook("train", [("y = 1", [])])}},
            "retrain": {"model": "clf", "stage": "train", "metric": "auc"},
            "monitor": {
                "notebook": project.add_notebook("monitor", MONITOR),
                "trigger": {"metric": "drift", "above": 0.2},
            },
        }
    )
    result_file = project.root / "result.json"
    ran = project.nbops(
        "exec-stage", "--pipeline", "pipeline.yaml", "--stage", "monitor", "--run-id", "monitor__r1",
        "--result-file", str(result_file),
    )  # fmt: skip
    assert ran.returncode == 99, ran.stderr
    assert "'clf' has no champion yet" in ran.stderr and "skipped" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert '"status": "skipped"' in result_file.read_text()
    assert not project.attempts("fresh", "monitor")  # nothing claimed
