"""`nbops test`: lint, the pipeline with its test parameters in a throwaway store, the failing
notebook named by stage and cell, outputs compared with --nbval, production left untouched."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from tests.conftest import Project

MODEL = "clf"
SIZED = [
    ("n: int = 1000000000  # rows; the spec sets production's", ["parameters"]),
    ("assert n < 100, f'{n} rows: too many for a test run'\nprint(n * 2)", []),
    ("rows = n", ["metrics"]),
]
REGISTER = [
    ("import nbops\nfrom sklearn.dummy import DummyClassifier\n"
     "model = DummyClassifier().fit([[0], [1]], [0, 1])\n"
     f"nbops.log_model(model, name='model', registered_model_name='{MODEL}', pip_requirements=['scikit-learn'])", []),
    ("auc = 0.9", ["metrics"]),
]  # fmt: skip


def make_project(project: Project, test_n: int = 5, gate: bool = False) -> Project:
    project.add_notebook("size", SIZED)
    stages = {"size": {"notebook": "nb/size.ipynb", "parameters": {"n": 1000}, "test_parameters": {"n": test_n}}}
    spec: dict[str, object] = {"name": "tested", "stages": stages}
    if gate:
        project.add_notebook("register", REGISTER)
        stages["register"] = {"notebook": "nb/register.ipynb", "needs": ["size"]}
        spec["retrain"] = {"model": MODEL, "stage": "register", "metric": "auc"}
    project.write_spec(spec)
    return project


def test_nbops_test_runs_with_the_test_parameters_in_a_throwaway_store(project: Project) -> None:
    make_project(project)
    done = project.nbops("test")
    assert done.returncode == 0, done.stderr
    assert "nbops test: pipeline.yaml passed" in done.stderr
    assert not (project.root / ".nbops").exists()  # nothing recorded beside the project
    scratch = re.search(r"throwaway store, (\S+)", done.stderr)
    assert scratch and not Path(scratch.group(1)).exists()  # and the throwaway store is gone


def test_a_failing_notebook_is_exit_1_naming_the_stage_and_cell_and_the_store_is_kept(project: Project) -> None:
    make_project(project, test_n=500)
    failed = project.nbops("test")
    assert failed.returncode == 1, failed.stderr
    assert "stage 'size' failed (exit 1): cell 1 (In [3]) raised AssertionError: 500 rows: too many" in failed.stderr
    kept = re.search(r"the throwaway store is kept for reading: (\S+)", failed.stderr)
    assert kept and list(Path(kept.group(1)).glob("artifacts/runs/tested/*/size/attempt-1/output.ipynb"))
    assert not (project.root / ".nbops").exists()


def test_lint_problems_are_exit_2_before_anything_runs(project: Project) -> None:
    make_project(project)
    spec = project.pipeline.read_text().replace("test_parameters:\n      n: 5", "test_parameters:\n      nn: 5")
    project.pipeline.write_text(spec)
    bad = project.nbops("test")
    assert bad.returncode == 2
    assert "unknown parameter 'nn'" in bad.stderr and "throwaway store" not in bad.stderr


def test_nbval_compares_the_executed_outputs_with_the_stored_ones(project: Project) -> None:
    make_project(project)
    path = project.root / "nb" / "size.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="10\n")]
    nbformat.write(nb, path)
    assert project.nbops("test", "--nbval").returncode == 0
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="12\n")]
    nbformat.write(nb, path)
    differs = project.nbops("test", "--nbval")
    assert differs.returncode == 1, differs.stderr
    assert "stage 'size': 1 output(s) differ" in differs.stderr
    assert "cell 1: stdout differs; stored: '12\\n'; this run: '10\\n'" in differs.stderr
    assert project.nbops("test").returncode == 0  # without --nbval outputs are not compared


def test_production_runs_registry_and_aliases_are_left_untouched(project: Project) -> None:
    make_project(project, gate=True)
    production = project.nbops("run", "-p", "size.n=50")
    assert production.returncode == 0, production.stderr
    before = {r.info.run_id for r in project.runs("tested")}
    tested = project.nbops("test")
    assert tested.returncode == 0, tested.stderr
    assert "gate clf: promoted (first_version)" in tested.stderr  # the gate ran, in the throwaway store
    client = project.client()
    assert {r.info.run_id for r in project.runs("tested")} == before
    assert [str(v.version) for v in client.search_model_versions(f"name = '{MODEL}'")] == ["1"]
    assert {a: str(v) for a, v in client.get_registered_model(MODEL).aliases.items()} == {
        "challenger": "1",
        "champion": "1",
    }
