"""SIGTERM to the stage command (pod deleted, Airflow timeout): the kernel is stopped, the
partial notebook archived, the MLflow run set to KILLED and the command exits 3 in time."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from tests.conftest import Project

pytestmark = pytest.mark.integration

GRACE_S = 20  # documented in the README's exit-code section


def test_sigterm_archives_the_partial_notebook_and_exits_3(project: Project) -> None:
    project.add_notebook(
        "long",
        [
            ("print('first cell done')", []),
            ("import time\nprint('sleeping', flush=True)\ntime.sleep(300)", []),
            ("print('never')", []),
        ],
    )
    project.write_spec({"name": "term", "stages": {"long": {"notebook": "nb/long.ipynb"}}})
    proc = project.popen("exec-stage", "--pipeline", "pipeline.yaml", "--stage", "long", "--run-id", "r1")
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if "sleeping" in line or time.monotonic() > deadline:
            break
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=GRACE_S + 10)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    elapsed = time.monotonic() - sent
    stderr = proc.stderr.read() if proc.stderr else ""
    assert code == 3, stderr
    assert elapsed <= GRACE_S, f"took {elapsed:.1f} s after SIGTERM"
    assert "terminated (SIGTERM) while cell 1 (In [2]) ran" in stderr

    attempt = project.attempts("term", "long")[0]
    assert not (attempt / "manifest.json").exists()
    archived = json.loads((attempt / "output.ipynb").read_text())
    assert archived["metadata"]["nbops"]["status"] == "killed"
    assert archived["metadata"]["nbops"]["failed_cell"] == 1
    outputs = archived["cells"][1]["outputs"]
    assert any(o.get("ename") == "Terminated" for o in outputs), outputs
    assert any("sleeping" in "".join(o.get("text", "")) for o in outputs), outputs
    assert "".join(archived["cells"][0]["outputs"][0]["text"]) == "first cell done\n"
    assert (attempt / "output.html").exists()

    run = next(r for r in project.runs("term") if r.data.tags.get("nbops.stage") == "long")
    assert run.info.status == "KILLED"
    assert run.data.tags["nbops.status"] == "killed"
    assert run.data.tags["nbops.failed_cell"] == "1"
