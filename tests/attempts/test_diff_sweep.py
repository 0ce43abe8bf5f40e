"""``nbops diff`` over a swept stage: points matched by id, a point that failed in one run against
the same point that succeeded in the other, and a stage that did not start in one run."""

from __future__ import annotations

import re

import pytest

from nbops.attempts.diff import diff_runs
from nbops.attempts.diff_sections import ValueChange
from nbops.sweep import unit
from tests.conftest import Project
from tests.sweeps import sweep_project

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FOREACH = {"foreach": [{"C": 0.5}, {"C": 2.0}]}


def run_id(stderr: str) -> str:
    found = re.search(r"^Run (\S+) ", stderr, re.MULTILINE)
    assert found is not None, stderr
    return found.group(1)


def test_points_are_matched_by_id_and_a_failed_point_is_compared(project: Project) -> None:
    sweep_project(project, FOREACH)
    first = project.nbops("run")
    assert first.returncode == 0, first.stderr
    (project.root / "fail-C2.0").write_text("")
    second = project.nbops("run", "--force", "train")
    assert second.returncode == 1, second.stderr
    a, b = run_id(first.stderr), run_id(second.stderr)

    result = diff_runs(project.pipeline, a, b)
    units = {u.unit: u for u in result.units}
    points = [u for u in units if u.startswith("train/")]
    assert list(units) == ["prep", *points, "pick"] and len(points) == 2
    kept, failed = (units[p] for p in points)
    assert kept.same and kept.b is not None and not kept.b.cached  # C=0.5 ran again, to the same effect
    assert not failed.same and failed.b is not None and failed.b.status == "failed"
    status = next(s for s in failed.sections if s.name == "status")
    assert status.changes == (ValueChange("status", "succeeded", "failed"),)
    assert units["pick"].a is not None and units["pick"].b is None  # it did not start after the failure
    assert units["prep"].same and units["prep"].b is not None and units["prep"].b.cached
    assert result.exit_code == 1

    itself = diff_runs(project.pipeline, b, b)
    assert itself.exit_code == 0 and "pick" not in [u.unit for u in itself.units]  # started in neither

    only = diff_runs(project.pipeline, a, b, points[1])
    assert [u.unit for u in only.units] == [points[1]]
    done = project.nbops("diff", a, b, "--stage", unit("train", "000000000000"))
    assert done.returncode == 2 and "no such point" in done.stderr
