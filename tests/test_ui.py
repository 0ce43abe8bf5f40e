"""``nbops ui`` serves the MLflow UI on 127.0.0.1 for the pipeline's own store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import Project, free_port

pytestmark = pytest.mark.integration


def test_ui_serves_the_pipeline_store(project: Project) -> None:
    project.write_spec({"name": "uitest", "stages": {"a": {"notebook": project.add_notebook("a", [("x = 1", [])])}}})
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbops", "ui", "--port", str(port)],
        cwd=project.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        body = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    body = response.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert body.strip() == "OK"
        (project.root / ".nbops" / "mlflow.db").stat()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    assert proc.stdout is not None
    said = proc.stdout.read().decode()
    # The printed address opens the pipeline's experiment in MLflow's model-training view.
    assert f"http://127.0.0.1:{port}/#/experiments/1/runs?workflowType=machine_learning" in said, said
