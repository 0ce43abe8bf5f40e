"""``exec-stage --promoted``: notebooks come from the artifact store and must hash to the lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbops.lock import read_lock
from nbops.promote import promote
from tests.conftest import Project, read_json

pytestmark = pytest.mark.integration


@pytest.fixture
def promoted(project: Project) -> tuple[Project, str]:
    project.add_notebook("only", [("n: int = 1", ["parameters"]), ("import nbops\nnbops.log_metric('n2', n * 2)", [])])
    project.write_spec({"name": "frozen", "stages": {"only": {"notebook": "nb/only.ipynb"}}})
    return project, promote(project.pipeline, project.root / "dags").lock_sha256


def exec_promoted(
    project: Project, sha: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}
    stores = {
        "MLFLOW_TRACKING_URI": project.tracking_uri,
        "NBOPS_ARTIFACT_ROOT": str(project.root / ".nbops" / "artifacts"),
    }
    return subprocess.run(
        [sys.executable, "-m", "nbops", "exec-stage", "--promoted", sha, "--stage", "only", "--run-id", "r1", *extra],
        cwd=project.root / "dags",
        env={**base, **(stores if env is None else env)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def published_notebook(project: Project) -> Path:
    lock, _ = read_lock(project.root / "dags" / "frozen.lock.json")
    return project.root / ".nbops" / "artifacts" / "notebooks" / f"{lock.stages['only'].sha256}.ipynb"


def test_promoted_stage_runs_from_the_store(promoted: tuple[Project, str]) -> None:
    project, sha = promoted
    (project.root / "nb" / "only.ipynb").unlink()  # the working tree is not read
    result = exec_promoted(project, sha, "--params-json", '{"n": 21}')
    assert result.returncode == 0, result.stderr
    manifest = read_json(project.attempts("frozen", "only")[0] / "manifest.json")
    assert manifest["parameters"] == {"n": 21}
    assert manifest["notebook"] == {"path": "nb/only.ipynb", "sha256": published_notebook(project).stem}
    run = next(r for r in project.runs("frozen") if r.data.tags.get("nbops.stage") == "only")
    assert run.data.metrics["n2"] == 42
    assert run.data.tags["nbops.notebook.sha256"] == published_notebook(project).stem


def test_tampered_notebook_is_refused(promoted: tuple[Project, str]) -> None:
    project, sha = promoted
    path = published_notebook(project)
    path.write_bytes(path.read_bytes().replace(b"n: int = 1", b"n: int = 9"))
    result = exec_promoted(project, sha)
    assert result.returncode == 2
    assert "the promoted notebook of stage 'only' has sha256" in result.stderr
    assert "nothing was run" in result.stderr
    assert "Traceback" not in result.stderr
    assert project.attempts("frozen", "only") == []


def test_tampered_lock_is_refused(promoted: tuple[Project, str]) -> None:
    project, sha = promoted
    lock = project.root / ".nbops" / "artifacts" / "locks" / f"{sha}.json"
    lock.write_text(lock.read_text().replace('"retries": null', '"retries": 5', 1))
    result = exec_promoted(project, sha)
    assert result.returncode == 2
    assert "the published lock was changed" in result.stderr
    assert project.attempts("frozen", "only") == []


@pytest.mark.parametrize(
    ("sha", "env", "message", "code"),
    [
        ("0" * 64, None, "the promoted lock is not in the artifact store", 3),  # not published yet: retried
        ("not-a-hash", None, "expected the 64-hex-digit sha256", 2),
        (None, {}, "MLFLOW_TRACKING_URI must be set", 2),
    ],
)
def test_bad_promoted_requests_exit_2_or_3(
    promoted: tuple[Project, str], sha: str | None, env: dict[str, str] | None, message: str, code: int
) -> None:
    project, real_sha = promoted
    result = exec_promoted(project, sha or real_sha, env=None if env is None else {**env, "PATH": os.environ["PATH"]})
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_exactly_one_source_is_required(promoted: tuple[Project, str]) -> None:
    project, sha = promoted
    result = exec_promoted(project, sha, "--pipeline", str(project.pipeline))
    assert result.returncode == 2
    assert "exactly one of --pipeline FILE and --promoted" in result.stderr


@pytest.fixture
def carrying(project: Project) -> tuple[Project, str]:
    """A notebook that imports a helper beside it and reads a data file the spec declares."""
    (project.root / "nb" / "helpers.py").write_text("def rows():\n    return [1, 2, 3]\n")
    (project.root / "data").mkdir()
    (project.root / "data" / "base.json").write_text('{"base": 10}')
    project.add_notebook(
        "only",
        [
            ("k: int = 1", ["parameters"]),
            (
                "import json\nfrom helpers import rows\ntotal = json.load(open('../data/base.json'))['base'] + sum(rows()) * k",
                [],
            ),
            ("score = total", ["metrics"]),
        ],
    )
    project.write_spec({"name": "frozen", "files": ["data/*.json"], "stages": {"only": {"notebook": "nb/only.ipynb"}}})
    return project, promote(project.pipeline, project.root / "dags").lock_sha256


def test_files_travel_with_the_promoted_notebook(carrying: tuple[Project, str]) -> None:
    """The helper beside the notebook (default) and the declared data file are frozen by content
    and laid out as in the project: the same notebook passes locally and promoted."""
    project, sha = carrying
    local = project.nbops("exec-stage", "--pipeline", "pipeline.yaml", "--stage", "only", "--run-id", "local")
    assert local.returncode == 0, local.stderr
    lock, _ = read_lock(project.root / "dags" / "frozen.lock.json")
    assert [f.path for f in lock.stages["only"].files] == ["data/base.json", "nb/helpers.py"]
    for path in ("nb/helpers.py", "data/base.json", "nb/only.ipynb"):
        (project.root / path).unlink()  # the pod reads nothing of the working tree
    result = exec_promoted(project, sha, "--params-json", '{"k": 2}')
    assert result.returncode == 0, result.stderr
    scores = {
        r.data.tags["nbops.run_id"]: r.data.metrics["score"]
        for r in project.runs("frozen")
        if "score" in r.data.metrics
    }
    assert scores == {"local": 16.0, "r1": 22.0}


def test_a_changed_published_file_is_refused(carrying: tuple[Project, str]) -> None:
    project, sha = carrying
    lock, _ = read_lock(project.root / "dags" / "frozen.lock.json")
    helper = next(f for f in lock.stages["only"].files if f.path == "nb/helpers.py")
    (project.root / ".nbops" / "artifacts" / "files" / helper.sha256).write_text("def rows():\n    return []\n")
    result = exec_promoted(project, sha)
    assert result.returncode == 2, result.stderr
    assert "'nb/helpers.py' has sha256" in result.stderr and "changed after `nbops promote`" in result.stderr
    assert project.attempts("frozen", "only") == []  # refused before anything was claimed


def test_promote_reports_a_changed_helper(carrying: tuple[Project, str]) -> None:
    project, _ = carrying
    (project.root / "nb" / "helpers.py").write_text("def rows():\n    return [4]\n")
    report = promote(project.pipeline, project.root / "dags")
    assert any(c.startswith("stage only: file nb/helpers.py changed (") for c in report.changes), report.changes
