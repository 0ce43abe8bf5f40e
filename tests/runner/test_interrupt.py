"""SIGTERM or Ctrl-C to ``nbops run``: every stage stopped and recorded, nothing left running, exit 3."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from nbops.runner.local import run_pipeline
from nbops.runner.plan import RunOptions
from nbops.stage.slots import RunHooks
from tests.conftest import Project

pytestmark = pytest.mark.integration

SLEEPER = [("print('first cell done')", []), ("import time\nprint('sleeping', flush=True)\ntime.sleep(300)", [])]


def _logs_say(project: Project, text: str, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = list((project.root / ".nbops" / "artifacts" / "runs").glob("*/*/.logs/*.log"))
        if sum(text in p.read_text(errors="replace") for p in logs) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{count} stage log(s) never said {text!r}")


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_every_stage_closes_the_record_and_leaves_no_process(
    project: Project, signum: signal.Signals
) -> None:
    project.write_spec(
        {
            "name": "stop",
            "stages": {
                "a": {"notebook": project.add_notebook("a", SLEEPER)},
                "b": {"notebook": project.add_notebook("b", SLEEPER)},
                "after": {"notebook": project.add_notebook("after", [("x = 1", [])]), "needs": ["a"]},
            },
        }
    )
    proc = project.popen("run", "--jobs", "2")
    _logs_say(project, "sleeping", 2)
    family = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    kernels = [p for p in family if "ipykernel" in " ".join(psutil.Process(p).cmdline())]
    assert len(kernels) == 2, family
    sent = time.monotonic()
    proc.send_signal(signum)
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 3, stderr
    assert time.monotonic() - sent < 25, stderr
    assert not _alive(family), f"left running: {_alive(family)}"

    # The summary names each stopped stage with its attempt and MLflow run; the resume command follows.
    runs = project.runs("stop")
    stage_runs = {r.data.tags["nbops.stage"]: r for r in runs if r.data.tags.get("nbops.kind") == "stage"}
    assert sorted(stage_runs) == ["a", "b"]
    for name, run in stage_runs.items():
        assert run.info.status == "KILLED" and run.data.tags["nbops.status"] == "killed"
        assert run.data.tags["nbops.failed_cell"] == "1"
        row = next(ln for ln in stderr.splitlines() if ln.startswith(f"{name} "))
        assert row.split()[1:3] == ["killed", "1"] and run.info.run_id in row, row
    assert next(ln for ln in stderr.splitlines() if ln.startswith("after ")).split()[1] == "skipped"
    (parent,) = [r for r in runs if r.data.tags.get("nbops.kind") == "pipeline"]
    assert parent.info.status == "KILLED" and parent.data.tags["nbops.status"] == "killed"
    assert f"was stopped ({signal.Signals(signum).name})" in stderr
    assert "--from a" in stderr
    for name in ("a", "b"):
        (attempt,) = project.attempts("stop", name)
        assert (attempt / "output.ipynb").exists() and not (attempt / "manifest.json").exists()


def test_a_signal_before_any_stage_starts_is_exit_3_too(project: Project, tmp_path: Path) -> None:
    project.write_spec({"name": "early", "stages": {"a": {"notebook": project.add_notebook("a", SLEEPER)}}})
    with socket.socket() as hang:  # a tracking server that accepts and never answers
        hang.bind(("127.0.0.1", 0))
        hang.listen()
        uri = f"http://127.0.0.1:{hang.getsockname()[1]}"
        proc = project.popen("run", env={"MLFLOW_TRACKING_URI": uri})
        time.sleep(4)  # well past start-up: the runner waits on the tracking server
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 3, stderr
    assert "before any stage started; nothing ran" in stderr
    assert "Traceback" not in stderr
    assert not project.attempts("early", "a")


@pytest.mark.unit
def test_run_pipeline_reports_a_signal_during_loading(monkeypatch: pytest.MonkeyPatch, project: Project) -> None:
    from nbops.runner import interrupt

    def load(path: object) -> None:
        raise interrupt.RunInterrupted("SIGINT")

    monkeypatch.setattr("nbops.runner.local.load_pipeline", load)
    summary = run_pipeline(RunOptions(pipeline_file=project.pipeline), RunHooks())
    assert (summary.exit_code, summary.interrupted, summary.stages) == (3, "SIGINT", {})
