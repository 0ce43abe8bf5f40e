"""The stage context's environment round trip, and the git state a record names."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nbops.context import GitState, StageContext, git_state

pytestmark = pytest.mark.unit


def git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.email=ci@example.org", "-c", "user.name=ci", *args]
    return subprocess.run(command, cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def test_context_round_trips_through_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ctx = StageContext("p", "r1", "train", 2, tmp_path / "out", {"prep": tmp_path / "in"})
    for key, value in ctx.to_env().items():
        monkeypatch.setenv(key, value)
    assert StageContext.from_env() == ctx


def test_git_state_of_the_checkout_and_of_the_sources(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "pipeline.yaml").write_text("name: p\n")
    (tmp_path / "readme.txt").write_text("a\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "sources")
    sources_commit = git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "p.lock.json").write_text("{}")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "the generated DAG")
    head = git(tmp_path, "rev-parse", "HEAD")
    spec = (tmp_path / "pipeline.yaml",)

    assert git_state(tmp_path) == GitState(head, dirty=False)
    # The sources' commit does not move when only the DAG directory is committed.
    assert (git_state(tmp_path, spec).commit, git_state(tmp_path, spec).dirty) == (sources_commit, False)

    (tmp_path / "dags" / "p.lock.json").write_text('{"changed": true}')
    assert git_state(tmp_path).dirty and not git_state(tmp_path, spec).dirty
    (tmp_path / "pipeline.yaml").write_text("name: q\n")
    assert git_state(tmp_path, spec).dirty
    (tmp_path / "new.ipynb").write_text("{}")  # never committed: the commit does not hold it
    git(tmp_path, "checkout", "-q", "pipeline.yaml")
    assert git_state(tmp_path, (*spec, tmp_path / "new.ipynb")).dirty


def test_git_state_outside_a_work_tree(tmp_path: Path) -> None:
    state = git_state(tmp_path)
    assert (state.commit, state.dirty, state.known) == ("unknown", False, False)
    assert git_state(tmp_path, (tmp_path / "pipeline.yaml",)).commit == "unknown"
