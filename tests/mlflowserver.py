"""MLflow's tracking server as the deployment tests and the load benchmark run it: artifacts
proxied to the S3-compatible store (``--artifacts-destination``), on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.s3server import S3Server


def spawn(
    backend: str, destination: str, port: int, s3: S3Server, log: Path, extra_env: dict[str, str], workers: int = 2
) -> subprocess.Popen[bytes]:
    """Start ``mlflow server`` on ``backend`` in its own session, its output in ``log``."""
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend,
        "--artifacts-destination", destination,
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    env = {**clean_env(), **s3.env(), "MLFLOW_S3_ENDPOINT_URL": s3.endpoint, **extra_env}
    # No job runner (seven huey worker processes), as in deploy/k8s/mlflow.yaml: nbops runs no MLflow jobs.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    with log.open("ab") as out:
        return subprocess.Popen(
            command, env=env, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def clean_env() -> dict[str, str]:
    """This process's environment without the settings of MLflow, nbops, Airflow and AWS."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_", "AIRFLOW", "AWS_"))}


def healthy(uri: str) -> bool:
    """Whether the server at ``uri`` answers its health check."""
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=5) as answer:  # noqa: S310 - our loopback server
            return bool(answer.read() == b"OK")
    except OSError:
        return False


def wait_healthy(uri: str, popen: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait until the server answers (True) or exits or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and popen.poll() is None:
        if healthy(uri):
            return True
        time.sleep(0.5)
    return False
