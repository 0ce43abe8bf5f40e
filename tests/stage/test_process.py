"""Stopping a stage command leaves nothing behind, including children in sessions of their own."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from nbops.stage.process import descendants, stop

pytestmark = pytest.mark.unit

# A parent that ignores SIGTERM and starts a grandchild in a new session (as jupyter_client
# starts kernels), which ignores SIGTERM too.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"],
                 start_new_session=True)
print("ready", flush=True)
time.sleep(600)
"""

POLITE = "import time\nprint('ready', flush=True)\ntime.sleep(600)"


def _start(code: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_stubborn_process_and_its_other_session_child_are_killed_after_the_grace() -> None:
    proc = _start(STUBBORN)
    deadline = time.monotonic() + 10
    while not descendants(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    family = descendants(proc.pid)
    assert family, "the grandchild did not start"
    started = time.monotonic()
    stop([proc], grace=1.0)
    assert 1.0 <= time.monotonic() - started < 10
    assert proc.returncode == -9
    time.sleep(0.2)
    assert not [p for p in family if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_polite_processes_stop_together_within_one_grace_period() -> None:
    procs = [_start(POLITE) for _ in range(3)]
    started = time.monotonic()
    stop(procs, grace=5.0)
    assert time.monotonic() - started < 3  # SIGTERM ends them at once, all in parallel
    assert [p.returncode for p in procs] == [-15, -15, -15]
