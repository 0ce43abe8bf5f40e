"""``nbops ui`` serves the MLflow UI on 127.0.0.1 for the pipeline's own store.

It announces the address only once the server answers, fails fast on a port already taken,
and a signal to it stops the whole ``mlflow server`` tree (uvicorn, the job runner, huey).
"""

from __future__ import annotations

import queue
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest

from nbops.errors import InfraError
from nbops.server import run_server
from nbops.ui import UI
from tests.conftest import Project, alive, free_port, listens

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _pipeline(project: Project) -> None:
    project.write_spec({"name": "uitest", "stages": {"a": {"notebook": project.add_notebook("a", [("x = 1", [])])}}})


@pytest.mark.integration
def test_a_taken_port_fails_fast_with_exit_2_naming_the_port(project: Project) -> None:
    _pipeline(project)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = project.nbops("ui", "--port", str(port), timeout=60)
        elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert elapsed < 10, elapsed
    assert f"port {port} " in result.stderr and "--port" in result.stderr, result.stderr
    assert "MLflow UI for" not in result.stdout, result.stdout
    assert not (project.root / ".nbops" / "mlflow.db").exists()  # nothing was started


@pytest.mark.integration
def test_the_address_comes_once_the_server_answers_and_sigterm_leaves_nothing_behind(
    project: Project, tmp_path: Path
) -> None:
    _pipeline(project)
    port = free_port()
    err_path = tmp_path / "ui.stderr"
    with err_path.open("w") as err:
        proc = project.popen("ui", "--port", str(port), stderr=err)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True).start()
    family: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + 120
        line = ""
        while "MLflow UI for" not in line:
            try:
                line = lines.get(timeout=0.25)
            except queue.Empty:
                assert proc.poll() is None, err_path.read_text()
                assert time.monotonic() < deadline, f"no address within 120 s: {err_path.read_text()}"
            family.update({p.pid: p for p in psutil.Process(proc.pid).children(recursive=True)})
        # At the moment the address is printed, the server answers on it.
        match = re.search(r" at (http://\S+) \(Ctrl-C stops it\)$", line.rstrip("\n"))
        assert match, line
        page = match.group(1)
        assert line.startswith("nbops ui: MLflow UI for 'uitest' at "), line
        assert page == f"http://127.0.0.1:{port}/#/experiments/1/runs?workflowType=machine_learning", line
        netloc = urllib.parse.urlsplit(page).netloc
        with NO_PROXY.open(f"http://{netloc}/", timeout=5) as response:
            assert response.status == 200
        with NO_PROXY.open(f"http://{netloc}/health", timeout=5) as response:
            assert response.read().decode().strip() == "OK"
        assert (project.root / ".nbops" / "mlflow.db").is_file()  # the pipeline's own store
        family.update({p.pid: p for p in psutil.Process(proc.pid).children(recursive=True)})
        started = list(family.values())
        commands = [" ".join(_cmdline(p)) for p in started]  # a start-up helper may be gone already
        assert any("mlflow server" in c for c in commands) and any("uvicorn" in c for c in commands), commands

        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # to nbops ui only: the server is in a session of its own
        proc.wait(30)
        assert time.monotonic() - sent < 30
        assert proc.returncode == 0, err_path.read_text()
        assert not listens(port), f"something still listens on {port}"
        assert not alive(started), f"left running: {[(p.pid, _cmdline(p)) for p in alive(started)]}"
        said = err_path.read_text()
        assert "starting the MLflow server" in said and "SIGTERM received" in said, said
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for left in alive(list(family.values())):
            left.kill()


@pytest.mark.unit
def test_a_server_that_exits_before_it_answers_fails_with_its_code_and_output() -> None:
    port = free_port()
    cmd = [sys.executable, "-c", "print('cannot open the store: boom', flush=True); raise SystemExit(7)"]
    announced: list[bool] = []
    started = time.monotonic()
    with pytest.raises(InfraError) as failure:
        run_server(cmd, port, lambda: announced.append(True), UI, startup_timeout=60)
    assert time.monotonic() - started < 10
    assert failure.value.exit_code == 3
    assert "exited with code 7 before it answered" in str(failure.value), failure.value
    assert "cannot open the store: boom" in str(failure.value), failure.value
    assert not announced


@pytest.mark.unit
def test_a_server_that_never_answers_is_stopped_after_the_startup_timeout() -> None:
    port = free_port()
    # Starts a child in its own session (as a server's workers might) and never listens.
    marker = f"nbops_ui_test_{port}"
    code = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; {marker} = 1; time.sleep(600)'], start_new_session=True)\n"
        "print('still loading', flush=True)\n"
        "time.sleep(600)\n"
    )
    announced: list[bool] = []
    with pytest.raises(InfraError) as failure:
        run_server([sys.executable, "-c", code], port, lambda: announced.append(True), UI, startup_timeout=3)
    assert f"did not answer on http://127.0.0.1:{port} within 3 s" in str(failure.value), failure.value
    assert "still loading" in str(failure.value)
    assert not announced
    left = [p for p in psutil.process_iter() if marker in " ".join(_cmdline(p))]
    assert not alive(left), left


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return list(proc.cmdline())
    except psutil.Error:
        return []
