"""The cluster's MLflow server with authentication, run for real on 127.0.0.1: ``mlflow server
--app-name basic-auth`` with the ``basic_auth.ini`` that deploy/k8s/mlflow.yaml deploys (only
its database moved to a temporary directory), the accounts and grants of deploy/README.md.

An anonymous write is refused (401); the pipeline's account records a run and moves the
``champion`` alias; an auditor's own account reads the run, its artifact and the alias, and
cannot move it (403). The server's whole process tree is stopped, its port free afterwards.
"""

from __future__ import annotations

import base64
import configparser
import importlib.util
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from nbops.stage.process import stop
from tests.conftest import ROOT, alive, free_port, listens

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # ~25 s of it: the server starting

DEPLOY = ROOT / "deploy"
PIPELINE, AUDITOR = "nbops-pipeline", "auditor"
MODEL = yaml.safe_load((ROOT / "pipeline.yaml").read_text())["retrain"]["model"]
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
STARTUP_S = 180

Account = tuple[str, str]


def _deployed() -> tuple[dict[str, Any], dict[str, Any]]:
    """The MLflow Deployment's container and the auth ConfigMap of deploy/k8s/mlflow.yaml."""
    docs = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "k8s" / "mlflow.yaml").read_text()) if d}
    (container,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container, docs["ConfigMap"]


def deployed_ini(auth_db: Path) -> str:
    """The deployed ``basic_auth.ini`` with its database at ``auth_db`` instead of the pod's claim."""
    _, config_map = _deployed()
    ini = configparser.ConfigParser()
    ini.read_string(config_map["data"]["basic_auth.ini"])
    assert ini["mlflow"]["database_uri"].startswith("sqlite:////mlflow/")  # the one thing moved here
    ini["mlflow"]["database_uri"] = f"sqlite:///{auth_db}"
    lines: list[str] = []
    for section in ini.sections():
        lines += [f"[{section}]", *(f"{key} = {value}" for key, value in ini[section].items())]
    return "\n".join(lines) + "\n"


@dataclass
class Server:
    url: str
    port: int
    admin: Account

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, who: Account | None = None) -> int:
        """The HTTP status of one REST call (``who``: basic auth; None: anonymous)."""
        request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            f"{self.url}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        if who is not None:
            request.add_header("Authorization", "Basic " + base64.b64encode(":".join(who).encode()).decode())
        try:
            with NO_PROXY.open(request, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)


@contextmanager
def running(tmp_path: Path) -> Iterator[Server]:
    """``mlflow server --app-name basic-auth`` as deployed, in a session of its own; on exit its
    process group and every process it started are stopped."""
    if importlib.util.find_spec("flask_wtf") is None:
        pytest.fail("MLflow's basic-auth app needs Flask-WTF (mlflow[auth]): the runner extra must carry it")
    container, _ = _deployed()
    app = next(a for a in container["args"] if a.startswith("--app-name="))
    deployed_env = {e["name"] for e in container["env"]}
    config = tmp_path / "basic_auth.ini"
    config.write_text(deployed_ini(tmp_path / "basic_auth.db"))
    admin = ("admin", secrets.token_urlsafe(18))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(
        {
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_AUTH_ADMIN_PASSWORD": admin[1],
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
    )
    assert {
        "MLFLOW_AUTH_CONFIG_PATH",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION",
    } <= deployed_env
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        app,
        "--host=127.0.0.1",
        f"--port={port}",
        "--workers=1",
        f"--backend-store-uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"--artifacts-destination={tmp_path / 'artifacts'}",
    ]
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    family: dict[int, psutil.Process] = {}
    try:
        _wait_until_it_answers(proc, port, family, tmp_path / "server.log")
        yield Server(f"http://127.0.0.1:{port}", port, admin)
    finally:
        _track(proc, family)
        stop([proc], grace=20)  # SIGTERM to the group, SIGKILL after 20 s, then every descendant it had
        left = alive(list(family.values()))
        for each in left:
            each.kill()
        log.close()
    assert not left, f"left running after the stop: {[p.pid for p in left]}"
    assert not listens(port), f"something still listens on {port}"


def _track(proc: subprocess.Popen[bytes], family: dict[int, Any]) -> None:
    """Remember the server's living descendants (uvicorn, the job runner, huey), to stop them all."""
    try:
        family.update({p.pid: p for p in psutil.Process(proc.pid).children(recursive=True)})
    except psutil.NoSuchProcess:
        pass


def _wait_until_it_answers(proc: subprocess.Popen[bytes], port: int, family: dict[int, Any], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while True:
        assert proc.poll() is None, f"mlflow server exited {proc.returncode}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no answer within {STARTUP_S} s:\n{log.read_text()[-3000:]}"
        _track(proc, family)
        try:
            with NO_PROXY.open(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)


def _grant_as_the_readme_says(server: Server) -> tuple[Account, Account]:
    """The accounts of deploy/README.md ("MLflow accounts"): the pipeline's, granted EDIT on every
    experiment and registered model, and an auditor's, granted nothing."""
    readme = (DEPLOY / "README.md").read_text()
    assert "for resource_type in experiment registered_model; do" in readme
    assert '\\"resource_id\\": \\"*\\", \\"permission\\": \\"EDIT\\"' in readme
    pipeline, auditor = (PIPELINE, secrets.token_urlsafe(18)), (AUDITOR, secrets.token_urlsafe(18))
    for name, password in (pipeline, auditor):
        body = {"username": name, "password": password}
        assert server.call("POST", "/api/2.0/mlflow/users/create", body, server.admin) == 200, name
    for resource_type in ("experiment", "registered_model"):
        grant = {"username": PIPELINE, "resource_type": resource_type, "resource_id": "*", "permission": "EDIT"}
        assert server.call("POST", "/api/3.0/mlflow/users/permissions/grant", grant, server.admin) == 200
    return pipeline, auditor


def _client(server: Server, who: Account, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An MlflowClient with ``who``'s account, read from the environment as in a pod."""
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", who[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", who[1])
    return MlflowClient(server.url)


def test_only_accounts_write_and_the_auditor_cannot_move_the_champion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    with running(tmp_path) as server:
        # The pipeline's experiment and model exist before its account does: only the grants let it write.
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", server.admin[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", server.admin[1])
        admin = MlflowClient(server.url)
        experiment = admin.create_experiment("diagnosis")
        admin.create_registered_model(MODEL)

        # Anonymous: no write, no read.
        alias = {"name": MODEL, "alias": "champion", "version": "1"}
        assert server.call("POST", "/api/2.0/mlflow/experiments/create", {"name": "anonymous"}) == 401
        assert server.call("POST", "/api/2.0/mlflow/registered-models/alias", alias) == 401
        assert server.call("GET", f"/api/2.0/mlflow/experiments/get?experiment_id={experiment}") == 401
        wrong = (server.admin[0], "not-the-password")
        assert server.call("POST", "/api/2.0/mlflow/experiments/create", {"name": "guessed"}, wrong) == 401

        pipeline, auditor = _grant_as_the_readme_says(server)

        # The pipeline records a run with an artifact, registers a version and moves the alias.
        client = _client(server, pipeline, monkeypatch)
        run = client.create_run(experiment).info
        client.log_metric(run.run_id, "roc_auc", 0.97)
        (tmp_path / "model.txt").write_text("the model")
        client.log_artifact(run.run_id, str(tmp_path / "model.txt"))
        client.set_terminated(run.run_id)
        first = client.create_model_version(MODEL, f"{run.artifact_uri}/model", run_id=run.run_id).version
        second = client.create_model_version(MODEL, f"{run.artifact_uri}/model", run_id=run.run_id).version
        client.set_registered_model_alias(MODEL, "champion", first)
        assert client.get_model_version_by_alias(MODEL, "champion").version == first

        # The auditor reads the run, its artifact and the champion with its own account...
        reader = _client(server, auditor, monkeypatch)
        assert reader.get_run(run.run_id).data.metrics == {"roc_auc": 0.97}
        assert Path(reader.download_artifacts(run.run_id, "model.txt", str(tmp_path))).read_text() == "the model"
        assert reader.get_model_version_by_alias(MODEL, "champion").version == first
        # ...and writes nothing: moving the alias and creating a run are refused.
        alias["version"] = second
        assert server.call("POST", "/api/2.0/mlflow/registered-models/alias", alias, auditor) == 403
        assert server.call("DELETE", "/api/2.0/mlflow/registered-models/alias", alias, auditor) == 403
        assert server.call("POST", "/api/2.0/mlflow/runs/create", {"experiment_id": experiment}, auditor) == 403
        with pytest.raises(MlflowException, match="403"):
            reader.set_registered_model_alias(MODEL, "champion", second)
        assert _client(server, pipeline, monkeypatch).get_model_version_by_alias(MODEL, "champion").version == first
