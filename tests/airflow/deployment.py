"""A real deployment for the Airflow tests, started and stopped by them, all on 127.0.0.1.

- PostgreSQL (:mod:`tests.pgserver`) holds Airflow's metadata and MLflow's tracking store.
- moto's S3 server (:mod:`tests.s3server`) holds MLflow's artifacts (the tracking server proxies
  them, ``--artifacts-destination``) and nbops's artifact root.
- MLflow's tracking server; stage commands record through it.
- Airflow's ``api-server``, ``scheduler`` (LocalExecutor), ``dag-processor`` and ``triggerer`` over
  a promoted project's ``dags/``, the stages on the local backend.

Everything is driven as an operator drives it: the REST API (``/api/v2``) with a token from the
auth endpoint. Waits are bounded and say, on a timeout, which state they awaited and the last one
seen.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tests import mlflowserver
from tests.conftest import free_port
from tests.pgserver import PgServer
from tests.s3server import BUCKET, S3Server

BIN = Path(sys.executable).parent
# In the environment of every process a deployment starts: ``<pytest pid>-<random>``. Finds them
# all (kernels included) at the end, and lets :func:`sweep` stop those of a test process that died.
OWNER = "NBOPS_TEST_DEPLOYMENT"
PG_OWNER = "NBOPS_TEST_DEPLOYMENT_PG"  # PostgreSQL's, apart: it outlives the other processes until stopped
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
USER, PASSWORD = "operator", "operator-password"
FINISHED = ("success", "failed")


class Timeout(AssertionError):
    """A bounded wait ran out; the message names what was awaited and what was last seen."""


def wait_for(
    what: str, probe: Callable[[], Any], done: Callable[[Any], bool], timeout: float, every: float = 1.0
) -> Any:
    """Call ``probe`` until ``done(result)``; the result, or :class:`Timeout` naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
        except AssertionError:
            raise
        except Exception as exc:  # a server restarting, a process gone, an answer cut short: try again
            last = f"{type(exc).__name__}: {exc}"
        else:
            if done(last):
                return last
        if time.monotonic() > deadline:
            raise Timeout(f"waited {timeout:.0f} s for {what}; last seen: {last!r}")
        time.sleep(every)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]


@dataclass
class Deployment:
    """The servers of one deployment over ``project`` (a promoted nbops project)."""

    root: Path
    project: Path
    pg: PgServer = field(default_factory=PgServer)
    s3: S3Server = field(default_factory=S3Server)
    processes: dict[str, Process] = field(default_factory=dict)
    api_port: int = field(default_factory=free_port)
    mlflow_port: int = field(default_factory=free_port)
    worker_log_port: int = field(default_factory=free_port)
    trigger_log_port: int = field(default_factory=free_port)
    # Every component signs and checks the same tokens: one secret of at least 64 bytes.
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(64))
    _token: str | None = None
    _stopped: bool = False
    owner: str = field(default_factory=lambda: f"{os.getpid()}-{secrets.token_hex(4)}")

    # ---- start and stop -------------------------------------------------------------------
    @property
    def home(self) -> Path:
        return self.root / "airflow-home"

    def start(self) -> Deployment:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
        self.pg.env = {PG_OWNER: self.owner}
        self.pg.start()
        self.s3.start()
        self.airflow_db = self.pg.create_database("airflow")
        self.mlflow_db = self.pg.create_database("mlflow")
        self._start_mlflow()
        migrated = subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"],
            env=self.env(),
            cwd=self.project,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]
        for component in COMPONENTS:
            self.spawn(component)
        wait_for("the API server's health endpoint", self._health, lambda h: h is not None, 120)
        return self

    def _start_mlflow(self) -> None:
        log = self.root / "mlflow.log"
        destination = f"s3://{BUCKET}/mlflow"
        popen = mlflowserver.spawn(self.mlflow_db, destination, self.mlflow_port, self.s3, log, {OWNER: self.owner})
        self.processes["mlflow"] = Process("mlflow", popen)
        wait_for("MLflow's tracking server", lambda: mlflowserver.healthy(self.tracking_uri), bool, 120)

    def spawn(self, component: str) -> Process:
        """Start (or restart) one Airflow component."""
        command = [str(BIN / "airflow"), component]
        if component == "api-server":
            command += ["--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1"]
        elif component in ("scheduler", "triggerer"):
            # Their log servers bind every interface (Airflow has no setting for it); the api-server
            # reads the task logs from this machine's disk without them.
            command.append("--skip-serve-logs")
        with (self.root / f"{component}.log").open("ab") as out:
            popen = subprocess.Popen(
                command, env=self.env(), cwd=self.project, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes[component] = Process(component, popen)
        return self.processes[component]

    def kill(self, component: str) -> None:
        """SIGKILL a component and everything it started."""
        process = self.processes[component]
        _kill_tree(process.popen.pid, signal.SIGKILL)
        process.popen.wait(timeout=30)

    def strays(self, everything: bool = False) -> list[str]:
        """Command lines of processes started under this deployment (its marker in their
        environment) that no running component owns; with ``everything``, owned ones too."""
        owned = set()
        if not everything:
            for process in self.processes.values():
                if process.popen.poll() is None:
                    owned |= {process.popen.pid, *(p.pid for p in descendants(process.popen.pid))}
        return [" ".join(p.info["cmdline"] or []) for p in self._strays() if p.pid not in owned]

    def _strays(self) -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                if proc.environ().get(OWNER) == self.owner:
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    def stop(self) -> list[str]:
        """Stop everything (again: nothing); the command lines of processes that outlived their
        component's stop (then killed), so a test can say none were left."""
        leftovers: list[str] = []
        stopping = [p for name in [*COMPONENTS, "mlflow"] if (p := self.processes.pop(name, None)) is not None]
        trees = {p.name: descendants(p.popen.pid) for p in stopping}
        for process in stopping:  # all at once: each takes seconds to shut down
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        try:
            for process in stopping:
                leftovers += _stop_tree(process.popen, trees[process.name])
            # What no tree held any more (a kernel whose stage process was killed): found by its environment.
            for proc in self._strays():
                leftovers.append(" ".join(proc.cmdline()))
                proc.kill()
        finally:
            if not self._stopped:
                self._stopped = True
                try:
                    self.s3.stop()
                finally:
                    self.pg.stop()
        return leftovers

    def nbops(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``nbops`` in the project against this deployment's MLflow server and artifact root
        (``nbops promote`` publishes the lock and notebooks there, where the stages read them)."""
        return subprocess.run(
            [str(BIN / "nbops"), *args],
            cwd=self.project,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    # ---- environment ----------------------------------------------------------------------
    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def artifact_root(self) -> str:
        return f"s3://{BUCKET}/nbops"

    @property
    def log_ports(self) -> tuple[int, int]:
        return self.worker_log_port, self.trigger_log_port

    def env(self) -> dict[str, str]:
        """Every component's environment: Airflow's settings a deployment must give, and the
        stages' MLflow server and artifact root."""
        return {
            **mlflowserver.clean_env(),
            **self.s3.env(),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.project / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.airflow_db,
            # psycopg 3 serves Airflow's async engine too (its default for postgresql is asyncpg).
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": self.airflow_db,
            # Tasks reach the API server through the execution API (default localhost:8080).
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.api,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
            "AIRFLOW__API__SECRET_KEY": self.jwt_secret,
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            # Parse new DAG files and schedule promptly: the tests wait on both.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            # A task whose process died with the scheduler is found in a minute, not five.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "45",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            # A restarted scheduler resets the dead one's tasks at this interval (default 300 s).
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "15",
            OWNER: self.owner,
            "NBOPS_BACKEND": "local",
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "NBOPS_ARTIFACT_ROOT": self.artifact_root,
        }

    # ---- REST API -------------------------------------------------------------------------
    def _health(self) -> Any:
        body = _get(f"{self.api}/api/v2/monitor/health")
        return json.loads(body) if body else None

    def token(self) -> str:
        if self._token is None:
            answer = _request("POST", f"{self.api}/auth/token", {"username": USER, "password": PASSWORD})
            self._token = str(answer["access_token"])
        return self._token

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return _request(method, f"{self.api}/api/v2{path}", body, {"Authorization": f"Bearer {self.token()}"})

    def wait_parsed(self, dag_ids: Iterable[str], timeout: float = 180) -> None:
        wanted = set(dag_ids)
        wait_for(
            f"DAGs {sorted(wanted)} parsed by the dag-processor",
            lambda: {d["dag_id"] for d in self.call("GET", "/dags?limit=100")["dags"]},
            lambda seen: wanted <= seen,
            timeout,
            every=2,
        )

    def unpause(self, dag_id: str, paused: bool = False) -> None:
        self.call("PATCH", f"/dags/{dag_id}", {"is_paused": paused})

    def runs(self, dag_id: str, run_type: str | None = None) -> list[dict[str, Any]]:
        """The DAG's runs, oldest first; with ``run_type``, those started that way only."""
        found: list[dict[str, Any]] = self.call("GET", f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]
        return [r for r in found if run_type is None or r["run_type"] == run_type]

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, logical_date: str | None = None) -> str:
        run = self.call("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": logical_date, "conf": conf or {}})
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.call("GET", f"/dags/{dag_id}/dagRuns/{_q(run_id)}")["state"])

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        state: str = wait_for(
            f"DAG run {run_id} of {dag_id} to finish (tasks: see the component logs in {self.root})",
            lambda: self.run_state(dag_id, run_id),
            lambda s: s in FINISHED,
            timeout,
            every=2,
        )
        return state

    def tasks(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """The run's task instances by task id (mapped ones by ``task[index]``)."""
        found = self.call("GET", f"/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances?limit=100")["task_instances"]
        return {t["task_id"] + (f"[{t['map_index']}]" if t["map_index"] >= 0 else ""): t for t in found}

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return {task: ti["state"] for task, ti in self.tasks(dag_id, run_id).items()}

    def wait_task(self, dag_id: str, run_id: str, task_id: str, states: tuple[str, ...], timeout: float = 300) -> str:
        state: str = wait_for(
            f"task {task_id} of DAG run {run_id} to be {' or '.join(states)}",
            lambda: self.task_states(dag_id, run_id).get(task_id),
            lambda s: s in states,
            timeout,
            every=1,
        )
        return state

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str) -> Any:
        path = f"/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/{task_id}"
        return self.call("PATCH", path, {"new_state": state})

    def respond(self, dag_id: str, run_id: str, task_id: str, option: str) -> Any:
        """Answer a human-in-the-loop task (the approval) as a person does in the UI."""
        path = f"/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/{task_id}/-1/hitlDetails"
        return self.call("PATCH", path, {"chosen_options": [option], "params_input": {}})

    def mlflow(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(self.tracking_uri)


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - our loopback servers
            return str(answer.read().decode())
    except (OSError, urllib.error.URLError):
        return None


def _request(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - our loopback server
            raw = answer.read()
    except urllib.error.HTTPError as exc:
        detail = f"{method} {url} answered {exc.code}: {exc.read().decode(errors='replace')[:2000]}"
        if exc.code >= 500:
            raise OSError(detail) from exc  # transient: a wait tries again
        raise AssertionError(detail) from exc
    return json.loads(raw) if raw else None


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _kill_tree(pid: int, sig: signal.Signals) -> None:
    for proc in descendants(pid):
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def sweep() -> list[str]:
    """Kill the processes of deployments whose test process is gone (killed, timed out hard):
    their command lines. Nothing of a running test process is touched."""
    killed = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            environ = proc.environ()
            owner = environ.get(OWNER) or environ.get(PG_OWNER)
            if owner and not psutil.pid_exists(int(owner.split("-")[0])):
                killed.append(" ".join(proc.info["cmdline"] or []))
                proc.kill()
        except (psutil.Error, ValueError):
            continue
    return killed


def _stop_tree(popen: subprocess.Popen[bytes], tree: list[psutil.Process], grace: float = 30) -> list[str]:
    """Wait for a component sent SIGTERM; after ``grace`` seconds, SIGKILL what is left of its
    ``tree``. The command lines of its descendants still alive after it stopped (killed then)."""
    if popen.poll() is None:
        try:
            popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _kill_tree(popen.pid, signal.SIGKILL)
            popen.wait(timeout=30)
    _, alive = psutil.wait_procs(tree, timeout=10)
    left = []
    for proc in alive:
        try:
            left.append(" ".join(proc.cmdline()))
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    return left
