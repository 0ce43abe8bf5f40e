"""Running a local HTTP server as a child tree until a signal stops it (``nbops ui``, ``nbops serve``).

The servers nbops starts are trees of processes (``mlflow server``: uvicorn, a job runner
and its huey consumers; ``mlflow models serve``: bash exec'ing uvicorn and its workers).
:func:`run_server` starts one in a session of its own, announces it only once it answers
HTTP, and on any way out (Ctrl-C, SIGTERM, SIGHUP, a failure) stops the whole tree: SIGTERM
to its process group, a short grace, then SIGKILL for anything left, descendants that left
the group or lost their parent included. :func:`check_port` fails fast, before anything
starts, when the port is taken.
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from nbops.errors import InfraError, InputError
from nbops.stage.process import descendants, stop
from nbops.stage.signals import NotedSignals
from nbops.status import ExitCode

HOST = "127.0.0.1"

STARTUP_TIMEOUT_S = 180.0
"""Seconds a server has to answer HTTP before it is stopped and the command fails (exit 3)."""

POLL_S = 0.25
"""Seconds between two checks whether the server answers."""

STOP_GRACE_S = 10.0
"""Seconds the server's processes have, after SIGTERM, before SIGKILL."""

TAIL_LINES = 20
"""Lines of the server's output quoted when it fails."""

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class ServerKind:
    """How one command speaks of its server, and where it asks whether the server answers."""

    command: str
    """The command, as the user types it: prefixes every message (``nbops ui``)."""
    server: str
    """The server, as messages name it (``the MLflow server``)."""
    port_user: str
    """Who else may hold the port (``another MLflow UI or another program``)."""
    port_risk: str
    """Why a taken port is refused (``the address would show that program, not this pipeline's runs``)."""
    probes: tuple[str, ...] = ("/health", "/")
    """Paths asked in turn; the server answers once one of them returns 2xx or 3xx."""
    rerun: str | None = None
    """The command line suggested with another ``--port`` (default: ``command``)."""


def check_port(port: int, kind: ServerKind) -> None:
    """Raise :class:`InputError` unless a server can listen on 127.0.0.1:``port``."""
    if not 1 <= port <= 65535:
        raise InputError(f"{kind.command}: --port {port} is not a TCP port (1-65535).")
    problem = _bind_problem(port)
    if problem is None:
        return
    other = next((p for p in range(port + 1, min(port + 50, 65535) + 1) if _bind_problem(p) is None), None)
    hint = f", e.g. `{kind.rerun or kind.command} --port {other}` (free now)" if other is not None else ""
    if problem == errno.EADDRINUSE:
        raise InputError(
            f"{kind.command}: port {port} on {HOST} is already in use ({kind.port_user} listens there), "
            f"so {kind.port_risk}. Stop it, or choose another port with --port{hint}."
        )
    raise InputError(
        f"{kind.command}: cannot listen on {HOST}:{port} ({_strerror(problem)}). Choose another port with --port{hint}."
    )


def run_server(
    cmd: list[str],
    port: int,
    announce: Callable[[], None],
    kind: ServerKind,
    *,
    env: Mapping[str, str] | None = None,
    startup_timeout: float = STARTUP_TIMEOUT_S,
) -> int:
    """Run the server ``cmd`` listening on 127.0.0.1:``port`` until a signal stops it (returns 0).

    ``announce`` is called once the server answers HTTP; ``env`` is its environment (default:
    ours). Raises :class:`InfraError` (exit 3) when the server exits before it answers, does
    not answer within ``startup_timeout`` seconds, or stops on its own; every process it
    started is stopped before this returns.
    """
    # Only noted: the loop waiting on the server reads it within POLL_S and stops the server,
    # so no signal can cut stopping it short.
    with NotedSignals(HANDLED) as signals:
        server = _Server(cmd, env, kind)
        try:
            failure = _serve(server, port, announce, startup_timeout, signals)
        finally:
            server.stop()
    if failure is not None:
        raise InfraError(f"{kind.command}: {failure}.{server.tail()}")
    return ExitCode.OK


def say(kind: ServerKind, text: str) -> None:
    """One line on stderr, prefixed with the command (``nbops ui: ...``)."""
    print(f"{kind.command}: {text}", file=sys.stderr, flush=True)  # noqa: T201 - the command's own log


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
    name = server.kind.server
    deadline = time.monotonic() + startup_timeout
    while True:
        if server.stopping(signals):
            return None
        code = server.proc.poll()
        if code is not None:
            return f"{name} {_ended(code)} before it answered on {HOST}:{port}"
        if _answers(port, server.kind.probes):
            break
        if time.monotonic() >= deadline:
            limit = f"{startup_timeout:g} s"
            return f"{name} did not answer on http://{HOST}:{port} within {limit}; it was stopped"
        server.track()
        server.wait(POLL_S)
    server.track()
    announce()
    server.output.forward()
    tracked = time.monotonic()
    while (code := server.wait(POLL_S)) is None:
        if server.stopping(signals):
            return None
        if time.monotonic() - tracked >= 5.0:
            server.track()  # processes it starts later are stopped too
            tracked = time.monotonic()
    return f"{name} stopped on its own ({_ended(code)})"


def _ended(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Asks 127.0.0.1 directly, whatever ``http_proxy`` says."""


def _answers(port: int, probes: tuple[str, ...]) -> bool:
    """Whether the server answers HTTP on 127.0.0.1:``port``: the first of ``probes`` that it serves."""
    for path in probes:
        try:
            with _NO_PROXY.open(f"http://{HOST}:{port}{path}", timeout=2) as response:
                return 200 <= int(response.status) < 400
        except urllib.error.HTTPError:
            continue  # it answers, but not (yet) on this path
        except (OSError, http.client.HTTPException):
            return False
    return False


class _Server:
    """The server process in a session of its own, its output and every process it started."""

    def __init__(self, cmd: list[str], env: Mapping[str, str] | None, kind: ServerKind) -> None:
        self.kind = kind
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=None if env is None else dict(env),
        )
        assert self.proc.stdout is not None  # noqa: S101 - set by stdout=PIPE
        self.output = _Output(self.proc.stdout, kind.command)
        self._family: set[Any] = set()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stopping(self, signals: NotedSignals) -> bool:
        """Whether a signal asks to stop (and say so)."""
        if signals.received is None:
            return False
        say(self.kind, f"{signals.received} received; stopping {self.kind.server}")
        return True

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

    def __init__(self, stream: IO[bytes], command: str) -> None:
        self._stream = stream
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._forward = threading.Event()
        name = f"{command.replace(' ', '-')}-output"
        self._thread = threading.Thread(target=self._read, name=name, daemon=True)
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
            # A progress bar redraws itself with carriage returns: keep only what it shows last.
            line = raw.decode(errors="replace").rstrip().rsplit("\r", 1)[-1]
            self._tail.append(line)
            if self._forward.is_set():
                try:
                    print(line, file=sys.stderr, flush=True)  # noqa: T201 - the server's own log
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


__all__ = ["HOST", "STARTUP_TIMEOUT_S", "ServerKind", "check_port", "run_server", "say"]
