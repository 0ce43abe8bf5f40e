"""nbops as a dependency of another repository, installed by the README's own lines: ``make
dist`` in a copy of this repository, then the wheel into a fresh venv under the constraints
exported from uv.lock; a project scaffolded by ``nbops init``, run, promoted, and its DAG
parsed by that venv's Airflow. Nothing comes from this repository's venv."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.images.test_runner_install import clean_env, run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

README = ROOT / "README.md"
SECTION = "## In your own repository"
WORK = "/path/to/your/work"
"""The README's placeholder for the directory where a team's notebooks live."""
INSTALL_TIMEOUT = 900
AFTER_INSTALL = [
    "nbops init my-project",
    "cd my-project",
    "nbops run",
    "nbops promote",
    "docker build -t my-project-runner:0.1 .",
]
"""What the README does with the venv; the test below does the same (but ``docker build``: no engine here)."""

PARSE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(sys.argv[1])
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "dags": {d: [t.task_id for t in dag.tasks] for d, dag in bag.dags.items()}}))
"""


def readme_steps() -> tuple[list[str], list[str]]:
    """The shell lines of the README's block for another repository, comments off: those up to
    the install (``uv pip install``), and those after it."""
    section = README.read_text().split(SECTION, 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [re.sub(r"\s+# .*$", "", line).strip() for line in block.splitlines() if line.strip()]
    (pip,) = [i for i, line in enumerate(lines) if "pip install" in line]
    return lines[: pip + 1], lines[pip + 1 :]


def copy_of_the_repository(target: Path) -> Path:
    """The repository without its venvs, stores and build output; the pinned uv of ``make
    bootstrap`` is shared when there is one (else ``make dist`` installs it in the copy)."""
    junk = (".git", ".venv", ".venv-tools", ".nbops", "dist", "__pycache__", ".mypy_cache", ".ruff_cache")
    shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(*junk, ".pytest_cache", "*.egg-info"))
    if (ROOT / ".venv-tools" / "bin" / "uv").is_file():
        (target / ".venv-tools").symlink_to(ROOT / ".venv-tools")
    return target


def constraints(path: Path) -> dict[str, str]:
    """``name: version`` of every unconditional pin of a constraints file."""
    pins = (line.split("==") for line in path.read_text().splitlines() if "==" in line and ";" not in line)
    return {normalized(name): version.strip() for name, version in pins}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def test_the_readme_block_is_install_then_what_this_module_tests() -> None:
    install, after = readme_steps()
    assert install[0] == "make dist" and any(".venv/bin/activate" in line for line in install)
    assert "-c " in install[-1] and "constraints.txt" in install[-1]  # the versions of uv.lock, not pip's choice
    assert after == AFTER_INSTALL


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's lines up to the install, as written, in bash; the README's placeholder for
    the team's directory is the only thing replaced. Then the versions are uv.lock's."""
    base = tmp_path_factory.mktemp("own-repo")
    repository = copy_of_the_repository(base / "nbops")
    work = base / "work"
    work.mkdir()
    install, _ = readme_steps()
    script = "\n".join(["set -e", *(line.replace(WORK, str(work)) for line in install), "pip check"])
    proc = run(["bash", "-c", script], env=clean_env(), cwd=repository, timeout=INSTALL_TIMEOUT)
    assert proc.returncode == 0, f"the README's install failed:\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}"

    venv = work / ".venv"
    frozen = run([venv / "bin" / "python", "-m", "pip", "freeze"], env=clean_env(venv), cwd=work)
    installed = dict(line.split("==", 1) for line in frozen.stdout.splitlines() if "==" in line)
    locked = constraints(repository / "dist" / "constraints.txt")
    differ = {n: (v, locked[normalized(n)]) for n, v in installed.items() if locked.get(normalized(n), v) != v}
    assert differ == {}, "installed versions differ from uv.lock's"
    assert {"apache-airflow", "mlflow", "papermill"} <= {normalized(n) for n in installed}
    return venv


@pytest.mark.timeout(INSTALL_TIMEOUT + 900)
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

    airflow_env = {
        **env,
        "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # The first parse in a fresh venv compiles Airflow's modules; beside another test on two
        # cores it can pass Airflow's 30 s import bound, which this test is not about.
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
    }
    parsed = run([venv / "bin" / "python", "-c", PARSE, project / "dags"], env=airflow_env, cwd=tmp_path, timeout=300)
    assert parsed.returncode == 0, parsed.stderr[-3000:]
    bag = json.loads(parsed.stdout.strip().splitlines()[-1])
    assert bag["errors"] == {}
    assert bag["dags"] == {"churn-model": ["check_conf", "prepare", "train", "close_run", "stages_succeeded"]}
