"""The stage context's environment round trip, and the git state a record names."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nbops.context import PIN_FILE, GitState, StageContext, find_pin, git_state
from nbops.errors import InputError

pytestmark = pytest.mark.unit


def git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.email=ci@example.org", "-c", "user.name=ci", *args]
    return subprocess.run(command, cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def test_context_round_trips_through_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ctx = StageContext("p", "r1", "train", 2, tmp_path / "out", {"prep": tmp_path / "in"})
    for key, value in ctx.to_env().items():
        monkeypatch.setenv(key, value)
    assert StageContext.from_env() == ctx


def test_a_debug_pin_holds_the_context_relative_to_its_directory(tmp_path: Path) -> None:
    swept = {"fit": [({"C": 1.0}, tmp_path / "p0"), ({"C": 10.0}, tmp_path / "p1")]}
    ctx = StageContext("p", "r1", "train", 2, Path("outputs"), {"prep": tmp_path / "in"}, swept)
    (tmp_path / "a" / "nb").mkdir(parents=True)
    (tmp_path / "a" / PIN_FILE).write_bytes(ctx.to_pin({"pipeline_file": "/x/pipeline.yaml"}))
    (tmp_path / "a").rename(tmp_path / "moved")  # the directory may move: outputs stay inside it
    pin = find_pin(tmp_path / "moved" / "nb")
    assert pin == tmp_path / "moved" / PIN_FILE
    read = StageContext.from_pin(pin)
    assert read.output_dir == tmp_path / "moved" / "outputs"
    assert (read.inputs, read.swept, read.run_id, read.attempt) == (ctx.inputs, swept, "r1", 2)
    assert find_pin(tmp_path) is None
    pin.write_text("{}")
    with pytest.raises(InputError, match="not a readable nbops debug pin"):
        StageContext.from_pin(pin)


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
