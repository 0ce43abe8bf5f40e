"""Checkpoints: a running stage's partial notebook reaches a remote store before it ends, and a
checkpoint that fails is logged, never fatal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbops.errors import InfraError
from nbops.stage.checkpoint import checkpoints
from tests.conftest import Project
from tests.s3server import BUCKET, S3Server, started


class _Refusing:
    def __init__(self) -> None:
        self.calls = 0

    def checkpoint(self, attempt: Any, name: str) -> None:
        self.calls += 1
        raise InfraError(f"artifact store: cannot upload {name}")


@pytest.mark.unit
def test_a_failed_checkpoint_is_logged_once_and_ends_the_checkpoints() -> None:
    store, said = _Refusing(), []
    checkpoint = checkpoints(store, object(), said.append)  # type: ignore[arg-type]
    for _ in range(3):
        checkpoint()
    assert store.calls == 1
    assert said == ["the partial notebook was not checkpointed (artifact store: cannot upload output.ipynb); "
                    "no more checkpoints for this attempt"]  # fmt: skip


@pytest.fixture
def s3() -> Iterator[S3Server]:
    yield from started()


@pytest.mark.integration
def test_the_partial_notebook_reaches_the_s3_store_while_the_stage_runs(
    project: Project, s3: S3Server, tmp_path: Path
) -> None:
    """The second cell waits for a file that the test writes only once it has read the first
    cell's output from the bucket: the stage cannot finish before its checkpoint is there."""
    gate = tmp_path / "gate"
    cells = [
        ("print('first', 'cell done')", []),
        (
            "import os, pathlib, time\nwhile not pathlib.Path(os.environ['GATE_FILE']).exists():\n    time.sleep(0.05)",
            [],
        ),
        ("print('after', 'the gate')", []),  # the output, not the source, says 'after the gate'
    ]
    project.write_spec({"name": "remote", "stages": {"s": {"notebook": project.add_notebook("s", cells)}}})
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_", "AWS_"))}
    env = {
        **base,
        **s3.env(),
        "NBOPS_ARTIFACT_ROOT": f"s3://{BUCKET}/store",
        "NBOPS_CACHE_DIR": str(project.root / "cache"),
        "NBOPS_CHECKPOINT_SECONDS": "0",
        "GATE_FILE": str(gate),
    }
    argv = ["exec-stage", "--pipeline", "pipeline.yaml", "--stage", "s", "--run-id", "r1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbops", *argv],
        cwd=project.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    key = "store/runs/remote/r1/s/attempt-1/output.ipynb"
    try:
        partial = _first_output(s3, key, deadline=time.monotonic() + 120)
        assert proc.poll() is None  # still waiting at the gate
        assert "after the gate" not in json.dumps(partial)
        assert "manifest.json" not in " ".join(s3.keys("store/runs/remote/r1/s/"))
    finally:
        gate.touch()
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    final = json.loads(s3.object(key))
    assert "after the gate" in json.dumps(final)  # the attempt's upload has the final notebook


def _first_output(s3: S3Server, key: str, deadline: float) -> dict[str, Any]:
    """The checkpointed notebook once it holds the first cell's output."""
    while time.monotonic() < deadline:
        if key in s3.keys(key):
            notebook: dict[str, Any] = json.loads(s3.object(key))
            if "first cell done" in json.dumps(notebook):
                return notebook
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint of {key} with the first cell's output")
