"""The local server runner shared by `nbops ui` and `nbops serve`: port checks, start-up
failures and the stop of the whole process tree, with a plain Python HTTP server."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import urllib.request

import psutil
import pytest

from nbops.errors import InfraError, InputError
from nbops.server import ServerKind, check_port, run_server
from tests.conftest import free_port

KIND = ServerKind(
    command="nbops test-server",
    server="the test server",
    port_user="another program",
    port_risk="the address would show that program",
    probes=("/",),
)


def test_a_taken_port_is_refused_naming_it_and_a_free_one() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InputError, match=rf"port {port}") as caught:
            check_port(port, KIND)
    assert "nbops test-server --port" in str(caught.value)
    with pytest.raises(InputError, match="is not a TCP port"):
        check_port(70000, KIND)


def test_a_server_that_exits_before_answering_is_an_infra_error_quoting_it() -> None:
    cmd = [sys.executable, "-c", "import sys; print('cannot start: no model'); sys.exit(5)"]
    with pytest.raises(InfraError, match="cannot start: no model") as caught:
        run_server(cmd, free_port(), lambda: None, KIND, startup_timeout=30)
    assert caught.value.exit_code == 3


def test_the_server_is_announced_once_it_answers_and_stopped_with_its_children_on_sigterm() -> None:
    port = free_port()
    # A server with a child of its own: a parent serving HTTP and a sleeping child process.
    code = (
        "import subprocess, sys, http.server\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"http.server.ThreadingHTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler).serve_forever()\n"
    )
    seen: list[int] = []

    def announce() -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
            seen.append(answer.status)
        me = psutil.Process()
        seen.extend(p.pid for p in me.children(recursive=True))
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()

    assert run_server([sys.executable, "-c", code], port, announce, KIND, startup_timeout=60) == 0
    assert seen[0] == 200 and len(seen) >= 3
    assert not [pid for pid in seen[1:] if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
