from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbops.api import resolve_pipeline_file
from nbops.lint import lint
from tests.conftest import ROOT, Project, example_project

pytestmark = pytest.mark.unit


def line_of(file: Path, fragment: str) -> int:
    """The number (1-based) of the first line of ``file`` containing ``fragment``."""
    return next(i for i, line in enumerate(file.read_text().splitlines(), 1) if fragment in line)


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
    assert len(problems) == 5  # each spec parameter the notebook refuses is a problem of its own
    assert "a.ipynb" in text and "invalid JSON" in text
    assert "parameter 'limit' expects int" in text and "unknown parameter 'nope'" in text
    assert "missing.ipynb: notebook not found" in text
    assert "tagged both skip and metrics" in text
    file = project.pipeline
    assert (
        f"{file}:{line_of(file, 'limit:')}: stages.b.parameters.limit: nb/b.ipynb: parameter 'limit' expects int"
        in text
    )
    assert f"{file}:{line_of(file, 'nope:')}: stages.b.parameters.nope: nb/b.ipynb: unknown parameter 'nope'" in text
    assert f"{file}:{line_of(file, 'missing')}: stages.c.notebook: nb/missing.ipynb: notebook not found" in text


def test_spec_errors_come_back_as_one_problem(project: Project) -> None:
    project.pipeline.parent.mkdir(parents=True, exist_ok=True)
    project.pipeline.write_text("name: x\nstages: {}\n")
    (problem,) = lint(project.pipeline)
    assert "stages" in problem


def test_the_default_pipeline_file_is_found_above_the_working_directory(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.write_spec(
        {"name": "up", "stages": {"a": {"notebook": project.add_notebook("a", [("x = 1", ["skip", "metrics"])])}}}
    )
    monkeypatch.delenv("NBOPS_PIPELINE_FILE", raising=False)
    monkeypatch.chdir(project.root / "nb")
    (problem,) = lint(resolve_pipeline_file(Path("pipeline.yaml")))
    assert str(project.root / "nb" / "a.ipynb") in problem and "tagged both skip and metrics" in problem
    (missing,) = lint(Path("pipeline.yaml"))
    assert "pipeline file not found" in missing
    assert resolve_pipeline_file(Path("other.yaml")) == Path("other.yaml")  # only the default is searched for


def test_nbops_lint_from_a_subdirectory_checks_the_pipeline_above(project: Project) -> None:
    project.write_spec({"name": "up", "stages": {"a": {"notebook": project.add_notebook("a", [("x = 1", [])])}}})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}
    result = subprocess.run(
        [sys.executable, "-m", "nbops", "lint"],
        cwd=project.root / "nb",
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "is clean" in result.stdout


def test_spec_problems_do_not_hide_the_notebook_problems(project: Project) -> None:
    project.write_spec(
        {
            "name": "Lint Me",
            "stages": {
                "a": {"notebook": project.add_notebook("a", [("x = 1", ["skip", "metrics"])]), "retries": -1},
                "b": {
                    "notebook": project.add_notebook("b", copy="params.ipynb"),
                    "needs": ["aa"],
                    "parameters": {"nope": 1},
                },
                "c": {"notebook": "nb/c.txt"},
            },
        }
    )
    problems = lint(project.pipeline)
    text = "\n".join(problems)
    assert "'Lint Me' is not a valid pipeline name" in text
    assert "stages.a.retries" in text and "stages.c.notebook" in text
    assert "stages.b.needs: unknown stage 'aa'; did you mean 'a'?" in text
    assert "a.ipynb (stage 'a'), cell 0: tagged both skip and metrics" in text  # stage a kept without its bad key
    assert "unknown parameter 'nope'" in text
    assert len(problems) == 6


def test_a_contract_problem_does_not_hide_the_tag_problems(project: Project) -> None:
    cells = [("limit = 1", ["parameters"]), ("y = 2", ["skip", "metrics"])]
    project.write_spec(
        {"name": "tags", "stages": {"a": {"notebook": project.add_notebook("a", cells), "parameters": {"limt": 2}}}}
    )
    problems = lint(project.pipeline)
    assert len(problems) == 2
    assert "unknown parameter 'limt'; did you mean 'limit'?" in problems[0]
    assert "cell 1: tagged both skip and metrics" in problems[1]


def test_a_project_module_the_stage_does_not_carry_is_a_problem(project: Project) -> None:
    """``helpers.py`` beside the notebook travels by default; a package beside it does not,
    and neither does a module the stage's files: leave out."""
    nb = project.root / "nb"
    (nb / "helpers.py").write_text("X = 1\n")
    (nb / "features").mkdir()
    (nb / "features" / "__init__.py").write_text("")
    (nb / "features" / "scale.py").write_text("Y = 2\n")
    project.add_notebook(
        "uses",
        [("import helpers\nfrom features.scale import Y\nimport os, json\n%matplotlib inline", [])],
    )
    project.write_spec({"name": "carry", "stages": {"uses": {"notebook": "nb/uses.ipynb"}}})
    (problem,) = lint(project.pipeline)
    assert "imports 'features' from the project, but the stage does not carry" in problem
    assert "nb/features/__init__.py, nb/features/scale.py" in problem and "files:" in problem
    project.write_spec(
        {"name": "carry", "stages": {"uses": {"notebook": "nb/uses.ipynb", "files": ["nb/features/*.py"]}}}
    )
    assert lint(project.pipeline) == []


def test_the_example_with_typos_names_file_line_field_and_nearest_match(tmp_path: Path) -> None:
    """The typos a person makes in the example's spec, each reported on its line in the spec's format."""
    project = example_project(tmp_path)
    spec = project.pipeline
    text = (
        spec.read_text()
        .replace("notebook: notebooks/train.ipynb", "notebook: notebooks/trian.ipynb")
        .replace("needs: [transform]", "needs: [transfrom]")
        .replace("needs: [prepare, optimize]", "need: [prepare, optimize]")
        .replace("batch_size: 3000}\n    test_parameters", "batch_size: lots}\n    test_parameters")
    )
    spec.write_text(text)
    assert lint(spec) == [
        f"{spec}:{line_of(spec, 'transfrom')}: stages.prepare.needs: unknown stage 'transfrom'; did you mean 'transform'?",
        f"{spec}:{line_of(spec, 'need: [')}: stages.evaluate.need: unknown key; did you mean 'needs'?",
        f"{spec}:{line_of(spec, 'lots')}: stages.ingest.parameters.batch_size: notebooks/ingest.ipynb: "
        "parameter 'batch_size' expects int, got str \"lots\"",
        f"{spec}:{line_of(spec, 'trian')}: stages.train.notebook: notebooks/trian.ipynb: notebook not found; "
        "did you mean 'notebooks/train.ipynb'?",
    ]


SPEC = """\
name: params
stages:
  a:
    notebook: nb/a.ipynb
    parameters: {limit: many, flag: true, as_of: "${run_date}"}
    test_parameters:
      limt: 2
  b:
    notebook: nb/b.ipynb
    parameters: {x: 1}
retrain: {model: m, stage: a, metric: auc}
monitor:
  notebook: nb/monitr.ipynb
  trigger: {metric: drift, above: 0.2}
"""


def test_spec_parameters_and_notebook_paths_are_reported_at_their_own_lines(project: Project) -> None:
    project.add_notebook("a", [("limit: int = 1\nflag = False\nas_of = '2026-01-01'", ["parameters"])])
    project.add_notebook("b", [("x = 1", [])])
    project.add_notebook("monitor", [("drift = 0.1", ["metrics"])])
    project.pipeline.write_text(SPEC)
    file = project.pipeline
    assert lint(file) == [
        f"{file}:5: stages.a.parameters.limit: nb/a.ipynb: parameter 'limit' expects int, got str \"many\"",
        f"{file}:7: stages.a.test_parameters.limt: nb/a.ipynb: unknown parameter 'limt'; did you mean 'limit'?",
        f"{file}:10: stages.b.parameters: nb/b.ipynb: the notebook has no cell tagged 'parameters', so it takes no "
        "parameters (overrides given: x). Tag the cell holding the defaults with 'parameters'.",
        f"{file}:13: monitor.notebook: nb/monitr.ipynb: notebook not found; did you mean 'nb/monitor.ipynb'?",
    ]
