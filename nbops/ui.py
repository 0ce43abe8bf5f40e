"""``nbops ui``: the MLflow UI on 127.0.0.1 for a pipeline's own tracking store.

``mlflow server`` is a tree of processes (the server, uvicorn, a job runner and its huey
consumers). ``nbops ui`` starts it in a session of its own, announces the address only once
the server answers HTTP, and on any way out (Ctrl-C, SIGTERM, SIGHUP, a failure) stops the
whole tree: SIGTERM to its process group, a short grace, then SIGKILL for anything left,
descendants that left the group or lost their parent included.
"""

from __future__ import annotations

import collections
import errno
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from nbops.errors import InfraError, InputError
from nbops.spec import load_pipeline
from nbops.stage.process import descendants, stop
from nbops.stage.signals import NotedSignals
from nbops.status import ExitCode
from nbops.storage import open_store
from nbops.storage.layout import state_dir
from nbops.tracking.record import ensure_experiment
from nbops.tracking.store import open_client, tracking_uri

HOST = "127.0.0.1"

STARTUP_TIMEOUT_S = 180.0
"""Seconds the server has to answer HTTP before ``nbops ui`` stops it and fails (exit 3)."""

POLL_S = 0.25
"""Seconds between two checks whether the server answers."""

STOP_GRACE_S = 10.0
"""Seconds the server's processes have, after SIGTERM, before SIGKILL."""

TAIL_LINES = 20
"""Lines of the server's output quoted when it fails."""

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def serve(pipeline_file: Path, port: int, *, startup_timeout: float = STARTUP_TIMEOUT_S) -> int:
    """Run ``mlflow server`` on the pipeline's store until interrupted; return the exit code.

    The port is checked before anything starts. A line on stderr says the server is starting;
    the address (``nbops ui: MLflow UI for '<name>' at <page> (Ctrl-C stops it)``, on stdout)
    follows once the server answers HTTP on 127.0.0.1:``port``. SIGINT (Ctrl-C), SIGTERM and
    SIGHUP stop the server and every process it started, as does any failure.

    Exit codes:

    * 0: stopped by SIGINT, SIGTERM or SIGHUP (the way to stop it); nothing left running.
    * 2 (:class:`~nbops.errors.InputError`): the pipeline file is invalid, or the port is not
      a valid port, is already in use or cannot be listened on (the message names the port
      and suggests ``--port``).
    * 3 (:class:`~nbops.errors.InfraError`): the server exited before it answered (the
      message gives its exit code and the tail of its output), did not answer within
      ``startup_timeout`` seconds (default :data:`STARTUP_TIMEOUT_S`, 180 s; it is stopped),
      or stopped on its own later.
    """
    pipeline = load_pipeline(pipeline_file)
    check_port(port)
    _say(f"starting the MLflow server for '{pipeline.name}' on {HOST}:{port}; its address follows once it answers")
    uri = tracking_uri(state_dir(pipeline.root))
    client = open_client(uri)  # creates the schema once, so the server starts on a ready store
    artifacts = open_store(pipeline.root).mlflow_location
    experiment = ensure_experiment(client, pipeline.name, artifacts)
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", uri,
        "--default-artifact-root", artifacts,
        "--host", HOST, "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    # The workflow type opens the model-training view whatever the browser chose last time.
    page = f"http://{HOST}:{port}/#/experiments/{experiment}/runs?workflowType=machine_learning"

    def announce() -> None:
        print(f"nbops ui: MLflow UI for '{pipeline.name}' at {page} (Ctrl-C stops it)", flush=True)

    return run_server(cmd, port, announce, startup_timeout=startup_timeout)


def run_server(
    cmd: list[str], port: int, announce: Callable[[], None], *, startup_timeout: float = STARTUP_TIMEOUT_S
) -> int:
    """Run the server ``cmd`` listening on 127.0.0.1:``port`` until a signal stops it (returns 0).

    ``announce`` is called once the server answers HTTP. Raises :class:`InfraError` (exit 3)
    when the server exits before it answers, does not answer within ``startup_timeout``
    seconds, or stops on its own; every process it started is stopped before this returns.
    """
    # Only noted: the loop waiting on the server reads it within POLL_S and stops the server,
    # so no signal can cut stopping it short.
    with NotedSignals(HANDLED) as signals:
        server = _Server(cmd)
        try:
            failure = _serve(server, port, announce, startup_timeout, signals)
        finally:
            server.stop()
    if failure is not None:
        raise InfraError(f"nbops ui: {failure}.{server.tail()}")
    return ExitCode.OK


def check_port(port: int) -> None:
    """Raise :class:`InputError` unless the server can listen on 127.0.0.1:``port``."""
    if not 1 <= port <= 65535:
        raise InputError(f"nbops ui: --port {port} is not a TCP port (1-65535).")
    problem = _bind_problem(port)
    if problem is None:
        return
    other = next((p for p in range(port + 1, min(port + 50, 65535) + 1) if _bind_problem(p) is None), None)
    hint = f", e.g. `nbops ui --port {other}` (free now)" if other is not None else ""
    if problem == errno.EADDRINUSE:
        raise InputError(
            f"nbops ui: port {port} on {HOST} is already in use (another MLflow UI or another program "
            f"listens there), so the address would show that program, not this pipeline's runs. Stop it, "
            f"or choose another port with --port{hint}."
        )
    raise InputError(
        f"nbops ui: cannot listen on {HOST}:{port} ({_strerror(problem)}). Choose another port with --port{hint}."
    )


def _bind_problem(port: int) -> int | None:
    """The errno binding 127.0.0.1:``port`` fails with (as the server binds it), None when it can."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no obstacle
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            return exc.errno or errno.EADDRINUSE
    return None


def _strerror(code: int) -> str:
    return os.strerror(code).lower()


def _serve(
    server: _Server, port: int, announce: Callable[[], None], startup_timeout: float, signals: NotedSignals
) -> str | None:
    """Wait until the server answers, announce it, serve until a signal (None) or a failure (why)."""
    deadline = time.monotonic() + startup_timeout
    while True:
        if _stopping(signals):
            return None
        code = server.proc.poll()
        if code is not None:
            return f"the MLflow server {_ended(code)} before it answered on {HOST}:{port}"
        if _answers(port):
            break
        if time.monotonic() >= deadline:
            limit = f"{startup_timeout:g} s"
            return f"the MLflow server did not answer on http://{HOST}:{port} within {limit}; it was stopped"
        server.track()
        server.wait(POLL_S)
    server.track()
    announce()
    server.output.forward()
    tracked = time.monotonic()
    while (code := server.wait(POLL_S)) is None:
        if _stopping(signals):
            return None
        if time.monotonic() - tracked >= 5.0:
            server.track()  # processes it starts later are stopped too
            tracked = time.monotonic()
    return f"the MLflow server stopped on its own ({_ended(code)})"


def _stopping(signals: NotedSignals) -> bool:
    """Whether a signal asks to stop (and say so)."""
    if signals.received is None:
        return False
    _say(f"{signals.received} received; stopping the MLflow server")
    return True


def _ended(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Asks 127.0.0.1 directly, whatever ``http_proxy`` says."""


def _answers(port: int) -> bool:
    """Whether the server answers HTTP on 127.0.0.1:``port``: ``/health``, else ``/``."""
    for path in ("/health", "/"):
        try:
            with _NO_PROXY.open(f"http://{HOST}:{port}{path}", timeout=2) as response:
                return 200 <= int(response.status) < 400
        except urllib.error.HTTPError:
            continue  # it answers, but not on this path
        except (OSError, http.client.HTTPException):
            return False
    return False


def _say(text: str) -> None:
    print(f"nbops ui: {text}", file=sys.stderr, flush=True)


class _Server:
    """The server process in a session of its own, its output and every process it started."""

    def __init__(self, cmd: list[str]) -> None:
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        assert self.proc.stdout is not None  # noqa: S101 - set by stdout=PIPE
        self.output = _Output(self.proc.stdout)
        self._family: set[Any] = set()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def track(self) -> None:
        """Remember the server's living descendants, to stop those that leave its group or tree too."""
        self._family.update(_children(self.proc.pid))

    def stop(self) -> None:
        """SIGTERM, grace, SIGKILL: the process group, then every remembered process still alive."""
        self.track()
        stop([self.proc], grace=STOP_GRACE_S)
        left = [p for p in self._family if _alive(p)]
        for proc in left:
            _signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = [p for p in left if _alive(p)]
        for proc in left:
            _signal(proc, signal.SIGKILL)
        self.output.join(2.0)

    def tail(self) -> str:
        lines = self.output.tail()
        if not lines:
            return " It printed nothing."
        return " Its last output:\n" + "\n".join(f"  {line}" for line in lines)


class _Output:
    """Reads the server's output: keeps its tail, passes it on to stderr once forwarded."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._forward = threading.Event()
        self._thread = threading.Thread(target=self._read, name="nbops-ui-output", daemon=True)
        self._thread.start()

    def forward(self) -> None:
        """From now on, pass the server's output on (its request log, its errors)."""
        self._forward.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def tail(self) -> list[str]:
        return list(self._tail)

    def _read(self) -> None:
        for raw in self._stream:
            line = raw.decode(errors="replace").rstrip()
            self._tail.append(line)
            if self._forward.is_set():
                try:
                    print(line, file=sys.stderr, flush=True)
                except (OSError, ValueError):
                    pass  # nobody reads our stderr any more: keep draining the pipe
        self._stream.close()


def _children(pid: int) -> list[Any]:
    """psutil handles on the living descendants of ``pid``, taken at once (safe against pid reuse)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with ipykernel and Airflow
        return []
    handles = []
    for child in descendants(pid):
        try:
            handles.append(psutil.Process(child))
        except psutil.Error:
            pass  # gone meanwhile
    return handles


def _alive(proc: Any) -> bool:
    import psutil

    try:
        return bool(proc.is_running()) and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal(proc: Any, signum: signal.Signals) -> None:
    import psutil

    try:
        proc.send_signal(signum)  # psutil checks the process is still the one remembered
    except psutil.Error:
        pass
