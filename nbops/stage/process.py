"""Stopping stage commands: SIGTERM, a grace period, then SIGKILL for anything left.

Used by the local runner and by the Airflow operator's local backend, so both give a stage
the same time to archive and record (DESIGN §10: within 20 s of SIGTERM). A stage command
runs in its own process group; its kernel runs in a session of its own (jupyter_client
starts kernels that way), so descendants are collected before the signal and any still
alive after the grace period are killed too: nothing a stage started outlives it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable

STOP_GRACE_S = 20
"""Seconds a stage command has, after SIGTERM, to archive and record before SIGKILL."""


def descendants(pid: int) -> list[int]:
    """Process ids of every living descendant of ``pid`` (empty when psutil is missing)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with ipykernel and Airflow
        return []
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def stop(processes: Iterable[subprocess.Popen[bytes] | subprocess.Popen[str]], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM each process group, wait up to ``grace`` seconds for all, then SIGKILL what is left."""
    procs = [p for p in processes if p.poll() is None]
    family = {p.pid: descendants(p.pid) for p in procs}
    for proc in procs:
        _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
    for proc in procs:
        for pid in family[proc.pid]:
            _kill_if_alive(pid)


def _signal_group(pid: int, signum: signal.Signals) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_if_alive(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
