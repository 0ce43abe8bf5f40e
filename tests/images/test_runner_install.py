"""The runner image's install recipe, run on the host: a stage must run from the built wheel alone.

``images/runner/install.sh`` is what the Dockerfiles run, so this checks the image's venv
without a Docker engine: locked dependencies plus the wheel, nothing from the project venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, Project

INSTALL = ROOT / "images" / "runner" / "install.sh"
INSTALL_TIMEOUT = 600

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def find_uv() -> Path:
    """The pinned uv of ``make bootstrap``, else one on PATH, else one beside this interpreter."""
    candidates = [ROOT / ".venv-tools" / "bin" / "uv", shutil.which("uv"), Path(sys.executable).parent / "uv"]
    for candidate in candidates:
        if candidate is not None and Path(candidate).is_file():
            return Path(candidate)
    pytest.fail(f"uv not found at {candidates[0]}, on PATH or beside {sys.executable}; run `make bootstrap`.")


def clean_env(venv: Path | None = None) -> dict[str, str]:
    """The caller's environment without any trace of the project venv or the developer's stores."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith(("MLFLOW_", "NBOPS_"))
    }
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p) != Path(sys.executable).parent]
    if venv is not None:
        path.insert(0, str(venv / "bin"))
    env["PATH"] = os.pathsep.join(path)
    return env


def run(
    args: list[str | Path], env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run outside the repository: ``python -c`` puts the working directory first on sys.path."""
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv made by the image's install recipe, once for this module."""
    target = tmp_path_factory.mktemp("runner") / "venv"
    env = clean_env()
    env["UV"] = str(find_uv())
    proc = run(["bash", INSTALL, ROOT, target], env=env, cwd=target.parent, timeout=INSTALL_TIMEOUT)
    assert proc.returncode == 0, f"install.sh failed:\n{proc.stdout}\n{proc.stderr}"
    return target


@pytest.mark.timeout(INSTALL_TIMEOUT + 120)
def test_venv_holds_the_wheel_and_no_airflow_or_dev_tools(venv: Path) -> None:
    env = clean_env(venv)
    python = venv / "bin" / "python"
    cwd = venv.parent

    where = run([python, "-c", "import nbops, sys; print(nbops.__file__)"], env=env, cwd=cwd)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).resolve().is_relative_to(venv.resolve())

    assert run([python, "-c", "import airflow"], env=env, cwd=cwd).returncode != 0, (
        "the runner venv must not carry Airflow"
    )
    assert run([python, "-c", "import pytest"], env=env, cwd=cwd).returncode != 0, (
        "the runner venv must not carry dev tools"
    )


@pytest.mark.timeout(INSTALL_TIMEOUT + 300)
def test_stage_runs_from_the_installed_venv(venv: Path, tmp_path: Path) -> None:
    project = Project(tmp_path / "proj")
    notebook = project.add_notebook(
        "only",
        [
            ("x: int = 1", ["parameters"]),
            ('import nbops\nimport pathlib\n(pathlib.Path(nbops.output_dir()) / "x.txt").write_text(str(x * 2))', []),
        ],
    )
    project.write_spec({"name": "wheel-check", "stages": {"only": {"notebook": notebook}}})

    proc = run(
        [
            venv / "bin" / "nbops",
            "exec-stage",
            "--pipeline",
            "pipeline.yaml",
            "--stage",
            "only",
            "--run-id",
            "r1",
            "--params-json",
            json.dumps({"x": 21}),
        ],
        env=clean_env(venv),
        cwd=project.root,
        timeout=300,
    )

    assert proc.returncode == 0, f"exec-stage failed:\n{proc.stdout}\n{proc.stderr}"
    attempt = project.root / ".nbops" / "artifacts" / "runs" / "wheel-check" / "r1" / "only" / "attempt-1"
    assert (attempt / "manifest.json").is_file()
    assert (attempt / "outputs" / "x.txt").read_text() == "42"
