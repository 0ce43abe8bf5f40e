"""``retries:`` is honoured by ``nbops run`` as by Airflow: only retryable outcomes, each try a nested run."""

from __future__ import annotations

import pytest

from tests.conftest import Project

pytestmark = pytest.mark.integration

# The kernel dies (exit 3, retryable) on the first try only.
DIES_ONCE = (
    "import os, pathlib\np = pathlib.Path('tries.txt')\nn = int(p.read_text()) if p.exists() else 0\n"
    "p.write_text(str(n + 1))\nif n == 0:\n    os._exit(1)\nprint('survived')",
    [],
)


def _spec(project: Project, cells: list[tuple[str, list[str]]], retries: int) -> None:
    project.write_spec(
        {"name": "retry", "stages": {"s": {"notebook": project.add_notebook("s", cells), "retries": retries}}}
    )


def test_a_kernel_death_is_retried_as_a_new_attempt(project: Project) -> None:
    _spec(project, [DIES_ONCE], retries=2)
    result = project.nbops("run", "--retry-delay", "0.2")
    assert result.returncode == 0, result.stderr
    assert "retry 1 of 2 in 0.2s" in result.stderr
    row = next(ln for ln in result.stderr.splitlines() if ln.startswith("s "))
    assert row.split()[1:4] == ["succeeded", "2", "2"], row  # status, attempt, tries
    first, second = project.attempts("retry", "s")
    assert not (first / "manifest.json").exists() and (second / "manifest.json").exists()
    runs = sorted(
        (r for r in project.runs("retry") if r.data.tags.get("nbops.kind") == "stage"),
        key=lambda r: int(r.data.tags["nbops.attempt"]),
    )
    assert [(r.info.status, r.data.tags["nbops.status"]) for r in runs] == [
        ("FAILED", "kernel_died"),
        ("FINISHED", "succeeded"),
    ]
    parents = {r.data.tags["mlflow.parentRunId"] for r in runs}
    assert len(parents) == 1


def test_without_retries_the_kernel_death_fails_the_run(project: Project) -> None:
    _spec(project, [DIES_ONCE], retries=0)
    result = project.nbops("run", "--retry-delay", "0")
    assert result.returncode == 3, result.stderr
    assert len(project.attempts("retry", "s")) == 1


def test_the_notebooks_own_failure_is_not_retried(project: Project) -> None:
    _spec(project, [("raise ValueError('bad data')", [])], retries=3)
    result = project.nbops("run", "--retry-delay", "0")
    assert result.returncode == 1, result.stderr
    assert len(project.attempts("retry", "s")) == 1
    assert "] retry" not in result.stderr  # no retry progress line
