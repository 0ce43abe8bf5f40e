"""Pipeline runs for the tests that only look at them: ``up`` then a failing ``down`` and a sweep; a
run of ``up`` alone that reuses that ``up``; last, one of ``up`` alone with another value (newer than
what the failed run consumed)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.attempts.pipelines import run_id, two_stages
from tests.conftest import Project


@dataclass(frozen=True)
class Runs:
    project: Project
    failed: str
    """The run where ``down`` failed after reading ``up`` with value 1."""
    newer: str
    """The last run, of ``up`` alone with value 2 (``cache-run``, before it, reused the failed run's ``up``)."""


@pytest.fixture(scope="package")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    project = Project(tmp_path_factory.mktemp("attempts") / "proj")
    two_stages(project, swept=True)
    first = project.nbops("run", "-p", "up.value=1")
    assert first.returncode == 1, first.stdout + first.stderr
    cached = project.nbops("run", "--stage", "up", "--run-id", "cache-run", "-p", "up.value=1")
    assert cached.returncode == 0 and "up     cached" in cached.stdout + cached.stderr, cached.stdout + cached.stderr
    second = project.nbops("run", "--stage", "up", "--run-id", "later-run", "-p", "up.value=2")
    assert second.returncode == 0, second.stdout + second.stderr
    return Runs(project, run_id(first), "later-run")
