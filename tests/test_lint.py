from __future__ import annotations

import pytest

from nbops.lint import lint
from tests.conftest import ROOT, Project

pytestmark = pytest.mark.unit


def test_example_pipeline_is_clean() -> None:
    assert lint(ROOT / "pipeline.yaml") == []


def test_every_stage_problem_reported(project: Project) -> None:
    project.write_spec(
        {
            "name": "lintme",
            "stages": {
                "a": {"notebook": project.add_notebook("a", copy="malformed.ipynb")},
                "b": {
                    "notebook": project.add_notebook("b", copy="params.ipynb"),
                    "parameters": {"limit": "x", "nope": 1},
                },
                "c": {"notebook": "nb/missing.ipynb"},
                "d": {"notebook": project.add_notebook("d", [("x = 1", ["skip", "metrics"])])},
            },
        }
    )
    problems = lint(project.pipeline)
    text = "\n".join(problems)
    assert len(problems) == 4
    assert "a.ipynb" in text and "invalid JSON" in text
    assert "parameter 'limit' expects int" in text and "unknown parameter 'nope'" in text
    assert "missing.ipynb: notebook not found" in text
    assert "tagged both skip and metrics" in text


def test_spec_errors_come_back_as_one_problem(project: Project) -> None:
    project.pipeline.parent.mkdir(parents=True, exist_ok=True)
    project.pipeline.write_text("name: x\nstages: {}\n")
    (problem,) = lint(project.pipeline)
    assert "stages" in problem
