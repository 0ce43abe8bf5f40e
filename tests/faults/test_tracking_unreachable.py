"""The tracking store is unreachable when a stage starts: exit 3, bounded in time, no cell
runs and nothing is reported as done without a record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import Project, free_port

pytestmark = pytest.mark.integration


def test_unreachable_store_fails_fast_with_exit_3(project: Project) -> None:
    project.add_notebook("a", [("open('ran.txt', 'w').write('ran')", [])])
    project.write_spec({"name": "unreach", "stages": {"a": {"notebook": "nb/a.ipynb"}}})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}
    env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "nbops", "exec-stage", "--pipeline", "pipeline.yaml", "--stage", "a", "--run-id", "r1"],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 3, result.stderr
    assert elapsed < 60, f"MLflow's own retries were not bounded: {elapsed:.0f} s"
    assert "is unreachable" in result.stderr
    assert not (project.root / "nb" / "ran.txt").exists(), "a cell ran without a record to write to"
    (attempt,) = project.attempts("unreach", "a")
    assert not (attempt / "manifest.json").exists()
    archived = json.loads((attempt / "output.ipynb").read_text())
    assert all(not c.get("outputs") for c in archived["cells"])
