"""``nbops init``: a project that lints clean, and nothing of the user's ever overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from nbops.cli import main
from nbops.lint import lint
from nbops.scaffold import init_project, project_name
from nbops.spec import load_pipeline

pytestmark = pytest.mark.unit


def test_project_names_are_valid_pipeline_names(tmp_path: Path) -> None:
    assert project_name(tmp_path / "Churn Model") == "churn-model"
    assert project_name(tmp_path / "2026_forecasts") == "pipeline-2026_forecasts"
    assert project_name(tmp_path / "___") == "pipeline"


def test_the_scaffold_is_a_clean_pipeline_with_tags_and_the_notebook_api(tmp_path: Path) -> None:
    made = init_project(tmp_path / "p")
    assert made.name == "p"
    assert sorted(str(f.relative_to(made.root)) for f in made.files) == [
        ".gitignore", "Dockerfile", "dags/README.md", "notebooks/prepare.ipynb", "notebooks/train.ipynb",
        "pipeline.yaml", "requirements.txt",
    ]  # fmt: skip
    assert lint(made.root / "pipeline.yaml") == []
    pipeline = load_pipeline(made.root / "pipeline.yaml")
    assert pipeline.needs() == {"prepare": (), "train": ("prepare",)}
    train = (made.root / "notebooks" / "train.ipynb").read_text()
    assert "nbops.input_dir('prepare')" in train and '"metrics"' in train and '"parameters"' in train
    assert '"skip"' in (made.root / "notebooks" / "prepare.ipynb").read_text()


def test_init_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text("mine")
    result = CliRunner().invoke(main, ["init", str(tmp_path)])
    assert result.exit_code == 2
    assert "pipeline.yaml already exist(s); nothing was written" in result.output
    assert (tmp_path / "pipeline.yaml").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline.yaml"]


def test_init_names_what_it_wrote_and_what_to_do_next(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["init", str(tmp_path / "demo"), "--name", "demo-flow"])
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'demo' / 'pipeline.yaml'}" in result.output
    assert "project 'demo-flow' ready. Next: cd" in result.output and "nbops run" in result.output
    assert "name: demo-flow" in (tmp_path / "demo" / "pipeline.yaml").read_text()
