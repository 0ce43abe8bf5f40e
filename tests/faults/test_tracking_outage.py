"""The tracking server goes away while a notebook runs: the notebook finishes, the record is
retried with bounded backoff, and success is never reported without a complete record."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import Project, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Server:
    """An MLflow tracking server on 127.0.0.1, started and stopped by the test."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port, self.proc = root, port, None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no job runner processes: nbops runs no MLflow jobs
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             "--default-artifact-root", (self.root / "art").as_uri(), "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as reply:  # noqa: S310 - our loopback server
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise AssertionError("the MLflow server did not come up")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


@pytest.fixture
def server(tmp_path: Path) -> Server:
    srv = Server(tmp_path, free_port())
    srv.start()
    yield srv
    srv.stop()


def start_stage(project: Project, uri: str) -> subprocess.Popen[str]:
    project.add_notebook(
        "work",
        [
            ("print('working', flush=True)", []),
            ("import time\ntime.sleep(6)\nscore = 0.5", ["metrics"]),
        ],
    )
    project.write_spec({"name": "outage", "stages": {"work": {"notebook": "nb/work.ipynb"}}})
    args = ["exec-stage", "--pipeline", "pipeline.yaml", "--stage", "work", "--run-id", "r1"]
    proc = project.popen(*args, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.stdout is not None
    for line in proc.stdout:
        if "working" in line:
            break
    return proc


def test_store_back_within_the_backoff_completes_the_record(project: Project, server: Server) -> None:
    proc = start_stage(project, server.uri)
    server.stop()
    time.sleep(8)  # the notebook finishes while the store is down
    server.start()
    assert proc.wait(timeout=180) == 0, proc.stderr.read() if proc.stderr else ""
    (attempt,) = project.attempts("outage", "work")
    assert (attempt / "manifest.json").exists()
    from mlflow import MlflowClient

    client = MlflowClient(server.uri)
    exp = client.get_experiment_by_name("outage")
    (run,) = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("nbops.stage") == "work"]
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"score": 0.5}


def test_store_gone_for_good_is_exit_3_without_a_manifest(project: Project, server: Server) -> None:
    proc = start_stage(project, server.uri)
    server.stop()
    started = time.monotonic()
    code = proc.wait(timeout=300)
    assert code == 3, proc.stderr.read() if proc.stderr else ""
    assert time.monotonic() - started < 150, "the retries were not bounded"
    (attempt,) = project.attempts("outage", "work")
    assert not (attempt / "manifest.json").exists()
    assert "score" in (attempt / "output.ipynb").read_text()  # the notebook itself finished and was archived
