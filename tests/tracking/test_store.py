"""Where MLflow records go: the embedded SQLite store, or a tracking server that proxies the
artifacts, so stage pods, the UI and auditors read them through one server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from nbops.tracking.store import experiment_location
from tests.conftest import Project, free_port


@pytest.mark.unit
def test_a_tracking_server_chooses_the_artifact_location() -> None:
    local = "file:///nbops/artifacts/mlflow"
    assert experiment_location("sqlite:////x/mlflow.db?timeout=120", local) == local
    assert experiment_location("postgresql://db/mlflow", local) == local
    assert experiment_location("http://mlflow.mlflow.svc.cluster.local:5000", local) is None
    assert experiment_location("https://mlflow.example", local) is None


@pytest.mark.integration
def test_stage_artifacts_go_through_a_proxying_server(project: Project, tmp_path: Path) -> None:
    """``mlflow server --artifacts-destination``: the stage logs through ``mlflow-artifacts:``; the
    files land in the server's destination, not in the stage's artifact store."""
    from mlflow import MlflowClient

    port, destination = free_port(), tmp_path / "server-artifacts"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no job runner processes: nbops runs no MLflow jobs
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(destination), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as reply:  # noqa: S310 - our loopback server
                    if reply.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "the MLflow server did not come up"
                time.sleep(0.5)
        project.add_notebook("only", [("score = 1.0", ["metrics"])])
        project.write_spec({"name": "proxied", "stages": {"only": {"notebook": "nb/only.ipynb"}}})
        proc = project.popen(
            "exec-stage", "--pipeline", "pipeline.yaml", "--stage", "only", "--run-id", "r1",
            env={"MLFLOW_TRACKING_URI": uri},
        )  # fmt: skip
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("proxied")
        assert experiment.artifact_location.startswith("mlflow-artifacts:")
        (run,) = client.search_runs([experiment.experiment_id], "tags.`nbops.kind` = 'stage'")
        assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"output.html", "manifest.json"}
        assert list(destination.rglob("output.html")), "the server holds the artifacts"
        assert not (project.root / ".nbops" / "artifacts" / "mlflow").exists()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
