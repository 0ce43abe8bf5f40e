"""``nbops audit`` on a real pipeline run that registers a model: by version, alias and run, in
text, JSON and HTML; then with an archived output and a source notebook copy altered."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import Project

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREP = [
    ("rows: int = 20", ["parameters"]),
    (
        "import json, nbops\n"
        "(nbops.output_dir() / 'data.json').write_text(json.dumps([[i, i % 2] for i in range(rows)]))",
        [],
    ),
]
TRAIN = [
    ("C: float = 1.0", ["parameters"]),
    (
        "import json, nbops\nfrom mlflow import MlflowClient\nfrom sklearn.linear_model import LogisticRegression\n"
        "data = json.loads((nbops.input_dir('prep') / 'data.json').read_text())\n"
        "model = LogisticRegression(C=C).fit([[r[0]] for r in data], [r[1] for r in data])",
        [],
    ),
    ("accuracy = float(model.score([[r[0]] for r in data], [r[1] for r in data]))", ["metrics"]),
    (
        "info = nbops.log_model(model, registered_model_name='toy-model')\n"
        "MlflowClient().set_registered_model_alias('toy-model', 'candidate', info.registered_model_version)",
        [],
    ),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, str]:
    project = Project(tmp_path_factory.mktemp("audited"))
    prep, train = project.add_notebook("prep", PREP), project.add_notebook("train", TRAIN)
    project.write_spec(
        {
            "name": "audited",
            "stages": {
                "prep": {"notebook": prep, "parameters": {"rows": 30}},
                "train": {"notebook": train, "needs": ["prep"]},
            },
        }
    )
    result = project.nbops("run", "-p", "train.C=0.5", timeout=600)
    assert result.returncode == 0, result.stderr
    (run_dir,) = (project.root / ".nbops" / "artifacts" / "runs" / "audited").iterdir()
    return project, run_dir.name


def test_the_version_is_walked_back_and_every_hash_verifies(trained: tuple[Project, str]) -> None:
    project, run_id = trained
    by_version = project.nbops("audit", "toy-model/1")
    assert by_version.returncode == 0, by_version.stdout + by_version.stderr
    assert "audit: " in by_version.stdout and "all passed" in by_version.stdout
    by_alias = project.nbops("audit", "models:/toy-model@candidate", "--json")
    assert by_alias.returncode == 0, by_alias.stderr
    document = json.loads(by_alias.stdout)
    assert document["schema"] == "nbops.audit/1" and document["ok"] is True
    assert document["pipeline_run"]["run_id"] == run_id
    stages = {s["stage"]: s for s in document["stages"]}
    assert set(stages) == {"prep", "train"}
    assert [(i["stage"], i["attempt"]) for i in stages["train"]["inputs"]] == [("prep", 1)]
    sources = {p["name"]: p["source"] for s in stages.values() for p in s["parameters"]}
    assert sources == {"rows": "spec", "C": "override"}
    subjects = {c["subject"] for c in document["checks"]}
    assert any("outputs/data.json" in s for s in subjects), subjects  # the upstream output was hashed
    by_run = project.nbops("audit", "--run", run_id, "pipeline.yaml", "--html", "audit.html")
    assert by_run.returncode == 0, by_run.stdout + by_run.stderr
    page = (project.root / "audit.html").read_text()
    assert "<script" not in page.lower() and run_id in page


def test_altered_output_and_notebook_copy_fail_the_audit_naming_them(trained: tuple[Project, str]) -> None:
    project, run_id = trained
    artifacts = project.root / ".nbops" / "artifacts"
    output = artifacts / "runs" / "audited" / run_id / "prep" / "attempt-1" / "outputs" / "data.json"
    manifest = json.loads((output.parent.parent.parent.parent / "train" / "attempt-1" / "manifest.json").read_text())
    notebook = artifacts / "notebooks" / f"{manifest['notebook']['sha256']}.ipynb"
    originals = {path: path.read_bytes() for path in (output, notebook)}
    try:
        output.write_text("[]")
        notebook.write_bytes(originals[notebook] + b" ")
        result = project.nbops("audit", "toy-model@candidate")
        assert result.returncode == 4, result.stdout + result.stderr
        assert "2 of" in result.stdout and "FAILED" in result.stdout
        for path in (output, notebook):
            assert str(path) in result.stdout
        output.unlink()
        assert f"missing: {output}" in project.nbops("audit", "toy-model/1").stdout
    finally:
        for path, raw in originals.items():
            path.write_bytes(raw)
    assert project.nbops("audit", "toy-model/1").returncode == 0


def test_a_champion_moved_outside_the_gate_fails_the_audit(trained: tuple[Project, str]) -> None:
    project, _ = trained
    client = project.client()
    client.set_registered_model_alias("toy-model", "champion", "1")  # by hand: no gate promoted version 1
    try:
        result = project.nbops("audit", "toy-model@champion")
    finally:
        client.delete_registered_model_alias("toy-model", "champion")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "alias champion points to model version toy-model/1, which no gate promoted" in result.stdout


def test_unknown_models_and_bad_references_are_input_errors(trained: tuple[Project, str]) -> None:
    project, _ = trained
    for ref, said in (("toy-model@nobody", "no alias 'nobody'"), ("toy-model", "NAME/VERSION"), ("other/1", "other")):
        result = project.nbops("audit", ref)
        assert result.returncode == 2, (ref, result.stdout, result.stderr)
        assert said in result.stderr, (ref, result.stderr)
    assert project.nbops("audit").returncode == 2  # neither MODEL nor --run
    assert project.nbops("audit", "toy-model/1", "pipeline.yaml", "other.yaml").returncode == 2


def test_audit_finds_the_pipeline_above_the_working_directory(trained: tuple[Project, str]) -> None:
    project, _ = trained
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}
    result = subprocess.run(
        [sys.executable, "-m", "nbops", "audit", "toy-model/1"],
        cwd=project.root / "nb",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "all passed" in result.stdout
