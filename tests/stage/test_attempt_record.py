"""What an attempt writes about itself: who ran it and where, on its run and on the pipeline run,
and the lineage a model version it registered is described with."""

from __future__ import annotations

import getpass
import hashlib
import socket
from typing import Any

import pytest

from nbops.stage.attempt_record import PARAMETER_SHOWN, RunLinks, version_description
from nbops.storage.manifest import ManifestInput
from nbops.tracking import record, tags
from tests.conftest import Project

SHA = "ab" * 32
LINKS = RunLinks(experiment_id="7", parent_run_id="parent1", stage_run_id="stage1")
RUN_TAGS = {
    tags.PIPELINE: "p",
    tags.RUN_ID: "r1",
    tags.STAGE: "fit",
    tags.ATTEMPT: "2",
    tags.NOTEBOOK_PATH: "nb/fit.ipynb",
    tags.NOTEBOOK_SHA256: SHA,
    tags.GIT_COMMIT: "c0ffee",
    tags.GIT_DIRTY: "true",
    tags.ENVIRONMENT: "python 3.11 at /venv",
    tags.PACKAGES_SHA256: "cd" * 32,
    tags.USER: "ops",
    tags.HOST: "box",
    tags.TRIGGERED_BY: "alice",
}
CONSUMED = (ManifestInput(stage="prep", attempt=3, manifest_sha256="ef" * 32, location="/store/prep/attempt-3"),)


@pytest.mark.unit
def test_the_description_links_the_pipeline_run_the_executed_notebook_and_the_stage_run() -> None:
    text = version_description(RUN_TAGS, {"alpha": 0.25, "max_depth": 3}, CONSUMED, LINKS)
    assert "[`r1`](#/experiments/7/runs/parent1)" in text
    assert "[executed notebook](#/experiments/7/runs/stage1/artifacts/output.html)" in text
    assert "[stage run](#/experiments/7/runs/stage1)" in text
    assert "`fit`, attempt 2" in text
    assert f"`nb/fit.ipynb`, sha256 `{SHA}`" in text
    assert "`c0ffee`, **dirty**" in text
    assert "`ops` on `box`, triggered by `alice`" in text
    assert "| alpha | 0.25 |" in text and "| max\\_depth | 3 |" in text  # no italics from the underscore
    assert f"| prep | 3 | `{'ef' * 32}` |" in text


@pytest.mark.unit
def test_the_description_keeps_values_from_breaking_its_markdown() -> None:
    plain = {k: v for k, v in RUN_TAGS.items() if k not in (tags.TRIGGERED_BY, tags.GIT_DIRTY)}
    text = version_description(plain, {"query": "a|b *c*", "long": "x" * 500}, (), LINKS)
    assert "| query | a\\|b \\*c\\* |" in text  # one cell, no emphasis
    assert f"| long | {'x' * (PARAMETER_SHOWN - 3)}... |" in text
    assert "triggered by" not in text and "dirty" not in text
    assert "**Upstream attempts consumed:** none" in text


@pytest.mark.unit
def test_parameters_past_mlflows_limit_are_counted_and_left_to_the_stage_run() -> None:
    parameters = {f"p{i:04d}": "v" * 100 for i in range(200)}
    text = version_description(RUN_TAGS, parameters, CONSUMED, LINKS)
    assert len(text) <= record.DESCRIPTION_LIMIT
    shown = text.count("| p0")
    assert 0 < shown < 200
    assert f"... and {200 - shown} more: see the [stage run](#/experiments/7/runs/stage1)." in text
    assert f"| prep | 3 | `{'ef' * 32}` |" in text  # the upstream digests are kept whole


# -- through the commands --------------------------------------------------------------------

PREP = [("import nbops\n(nbops.output_dir() / 'rows.txt').write_text('1\\n2\\n')", [])]
FIT = [
    ("alpha: float = 0.5\nmodel_name: str = 'clf'", ["parameters"]),
    (
        "import nbops\nfrom sklearn.dummy import DummyClassifier\n"
        "model = DummyClassifier(strategy='prior').fit([[0], [1]], [0, 1])\n"
        "nbops.log_model(model, name='model', registered_model_name=model_name, pip_requirements=['scikit-learn'])",
        [],
    ),
]


def lineage_project(project: Project) -> Project:
    project.write_spec(
        {
            "name": "lineage",
            "stages": {
                "prep": {"notebook": project.add_notebook("prep", PREP)},
                "fit": {"notebook": project.add_notebook("fit", FIT), "needs": ["prep"]},
            },
        }
    )
    return project


def runs_of(project: Project, run_id: str) -> dict[str, Any]:
    """The MLflow runs of one nbops run: its parent as ``pipeline``, its stage runs by stage."""
    found = [r for r in project.runs("lineage") if r.data.tags.get(tags.RUN_ID) == run_id]
    return {r.data.tags.get(tags.STAGE, "pipeline"): r for r in found}


@pytest.mark.integration
@pytest.mark.slow
def test_a_run_names_who_triggered_it_and_describes_its_version(project: Project) -> None:
    lineage_project(project)
    proc = project.popen("run", "--run-id", "r1", "-p", "fit.alpha=0.25", env={"NBOPS_TRIGGERED_BY": "alice"})
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    runs = runs_of(project, "r1")
    assert set(runs) == {"pipeline", "prep", "fit"}
    for run in runs.values():  # the parent (the runner's) and each stage's (the stage command's)
        assert run.data.tags[tags.USER] == getpass.getuser()
        assert run.data.tags[tags.HOST] == socket.gethostname()
        assert run.data.tags[tags.TRIGGERED_BY] == "alice"
        assert run.data.tags[tags.MLFLOW_USER] == "alice" and run.info.user_id == "alice"  # "Created by"

    client = project.client()
    fit, parent = runs["fit"], runs["pipeline"]
    (version,) = client.search_model_versions("name = 'clf'")
    text = client.get_model_version("clf", version.version).description
    exp = fit.info.experiment_id
    assert f"[`r1`](#/experiments/{exp}/runs/{parent.info.run_id})" in text
    assert f"[executed notebook](#/experiments/{exp}/runs/{fit.info.run_id}/artifacts/output.html)" in text
    assert "output.html" in {a.path for a in client.list_artifacts(fit.info.run_id)}  # the link's target
    assert f"`nb/fit.ipynb`, sha256 `{fit.data.tags[tags.NOTEBOOK_SHA256]}`" in text
    assert "| alpha | 0.25 |" in text and "| model\\_name | clf |" in text
    (prep,) = project.attempts("lineage", "prep")
    digest = hashlib.sha256((prep / "manifest.json").read_bytes()).hexdigest()
    assert f"| prep | 1 | `{digest}` |" in text
    assert f"`{getpass.getuser()}` on `{socket.gethostname()}`, triggered by `alice`" in text


@pytest.mark.integration
def test_a_stage_started_alone_credits_the_os_user(project: Project) -> None:
    lineage_project(project)
    result = project.nbops("exec-stage", "--pipeline", "pipeline.yaml", "--stage", "prep", "--run-id", "r2")
    assert result.returncode == 0, result.stderr
    runs = runs_of(project, "r2")
    assert set(runs) == {"pipeline", "prep"}  # the stage command created the parent itself
    for run in runs.values():
        assert run.data.tags[tags.USER] == getpass.getuser()
        assert run.data.tags[tags.HOST] == socket.gethostname()
        assert tags.TRIGGERED_BY not in run.data.tags
        assert run.data.tags[tags.MLFLOW_USER] == getpass.getuser() == run.info.user_id
