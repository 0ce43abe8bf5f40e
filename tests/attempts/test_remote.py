"""nbops logs and nbops debug of a run made on an s3:// store, read back through an empty cache (as
from a laptop after a run in pods); nbops logs --follow of a stage running on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbops.context import PIN_FILE
from tests.attempts.pipelines import follow_running_stage, run_id, two_stages
from tests.attempts.test_debug import papermill
from tests.conftest import Project
from tests.s3server import BUCKET, S3Server, started


@pytest.fixture
def s3() -> Iterator[S3Server]:
    yield from started()


def nbops(project: Project, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_", "AWS_"))}
    return subprocess.run(
        [sys.executable, "-m", "nbops", *args],
        cwd=project.root,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.integration
def test_logs_and_debug_read_the_s3_store(s3: S3Server, project: Project, tmp_path: Path) -> None:
    two_stages(project)
    env = {**s3.env(), "NBOPS_ARTIFACT_ROOT": f"s3://{BUCKET}/store", "NBOPS_CACHE_DIR": str(tmp_path / "ran")}
    ran = nbops(project, env, "run")
    assert ran.returncode == 1, ran.stdout + ran.stderr
    run = run_id(ran)
    assert not (project.root / ".nbops" / "artifacts").exists()
    reader = {**env, "NBOPS_CACHE_DIR": str(tmp_path / "reader")}  # another machine's empty cache

    logs = nbops(project, reader, "logs", "down")
    assert logs.returncode == 0, logs.stderr
    assert f"of run {run}: s3://{BUCKET}/store/runs/dbg/{run}/down/attempt-1" in logs.stdout
    assert "[4] In [5]: if fail:  <-- failed here" in logs.stdout and "    down read 1" in logs.stdout

    target = tmp_path / "debugging"
    debug = nbops(project, reader, "debug", "down", "--dir", str(target))
    assert debug.returncode == 0, debug.stderr
    assert "cell 4 (In [5]) raised ValueError: refused 1" in debug.stdout
    upstream = Path(json.loads((target / PIN_FILE).read_text())["inputs"]["up"])
    assert upstream.is_relative_to(tmp_path / "reader") and (upstream / "value.txt").read_text() == "1"
    rerun = papermill(target / "nb" / "down.ipynb")
    assert "ValueError: refused 1" in rerun.stdout + rerun.stderr
    assert (target / "outputs" / "seen.txt").read_text() == "11"


@pytest.mark.integration
def test_follow_a_stage_running_on_the_s3_store(s3: S3Server, project: Project, tmp_path: Path) -> None:
    store = f"s3://{BUCKET}/store"
    env = {**s3.env(), "NBOPS_ARTIFACT_ROOT": store, "NBOPS_CACHE_DIR": str(tmp_path / "cache")}

    def started() -> bool:
        return any(key.endswith("/waits/attempt-1/output.ipynb") for key in s3.keys("store/runs/follow/"))

    # Every save checkpointed (the default is at most every 5 s, and the waiting cell saves nothing).
    follow_running_stage(project, {**env, "NBOPS_CHECKPOINT_SECONDS": "0"}, started)
    assert not (project.root / ".nbops" / "artifacts").exists()
