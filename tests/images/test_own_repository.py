"""nbops as a dependency of another repository: the built wheel with its ``runner`` and
``airflow`` extras in a fresh venv, a project scaffolded by ``nbops init``, run, promoted,
and its DAG parsed by that venv's Airflow. Nothing comes from this repository's venv."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.images.test_runner_install import clean_env, find_uv, run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARSE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(sys.argv[1])
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "dags": {d: [t.task_id for t in dag.tasks] for d, dag in bag.dags.items()}}))
"""


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install nbops[runner,airflow]`` as a team would, from the locked versions (with hashes)."""
    work = tmp_path_factory.mktemp("own-repo")
    uv, env = str(find_uv()), clean_env()
    steps = [
        [uv, "export", "--project", ROOT, "--frozen", "--no-dev", "--extra", "runner", "--extra", "airflow",
         "--no-emit-project", "--no-header", "--format", "requirements-txt", "-o", work / "req.txt", "--quiet"],
        [uv, "build", "--wheel", "--out-dir", work / "dist", "--quiet", ROOT],
        [uv, "venv", "--no-project", "--python", "python3.11", "--quiet", work / "venv"],
        [uv, "pip", "install", "--python", work / "venv" / "bin" / "python", "--require-hashes", "--no-deps",
         "--quiet", "-r", work / "req.txt"],
    ]  # fmt: skip
    for step in steps:
        proc = run(step, env=env, cwd=work, timeout=600)
        assert proc.returncode == 0, f"{step[1]} failed:\n{proc.stdout}\n{proc.stderr}"
    (wheel,) = (work / "dist").glob("nbops-*.whl")
    python = work / "venv" / "bin" / "python"
    for step in (
        [uv, "pip", "install", "--python", python, "--no-deps", "--quiet", wheel],
        [uv, "pip", "check", "--python", python],  # the extras' requirements are all there, and coherent
    ):
        proc = run(step, env=env, cwd=work, timeout=600)
        assert proc.returncode == 0, f"{step[1:3]} failed:\n{proc.stdout}\n{proc.stderr}"
    return work / "venv"


@pytest.mark.timeout(900)
def test_init_run_promote_and_parse_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    env = clean_env(venv)
    nbops = venv / "bin" / "nbops"
    where = run([venv / "bin" / "python", "-c", "import nbops; print(nbops.__file__)"], env=env, cwd=tmp_path)
    assert Path(where.stdout.strip()).resolve().is_relative_to(venv.resolve()), where.stderr

    made = run([nbops, "init", "churn model"], env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "churn model"
    assert "project 'churn-model' ready" in made.stdout
    assert ".nbops/" in (project / ".gitignore").read_text().splitlines()
    dockerfile = (project / "Dockerfile").read_text()
    assert (
        "FROM ${NBOPS_RUNNER}" in dockerfile and "--require-hashes" in dockerfile and "USER 10001:10001" in dockerfile
    )

    ran = run([nbops, "run"], env=env, cwd=project, timeout=600)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "Run " in ran.stderr and "succeeded" in ran.stderr
    promoted = run([nbops, "promote"], env=env, cwd=project, timeout=300)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr

    airflow_env = {**env, "AIRFLOW_HOME": str(tmp_path / "airflow-home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    parsed = run([venv / "bin" / "python", "-c", PARSE, project / "dags"], env=airflow_env, cwd=tmp_path, timeout=300)
    assert parsed.returncode == 0, parsed.stderr[-3000:]
    bag = json.loads(parsed.stdout.strip().splitlines()[-1])
    assert bag["errors"] == {}
    assert bag["dags"] == {"churn-model": ["check_conf", "prepare", "train", "close_run", "stages_succeeded"]}
