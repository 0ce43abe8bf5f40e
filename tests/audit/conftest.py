"""One set of records per test session (MLflow's schema takes seconds); copies for tests that alter it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.audit.records import Records, build


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Records:
    """The records, never altered: tests that only read them use this tree."""
    return build(tmp_path_factory.mktemp("audit") / "project")


@pytest.fixture
def records(template: Records, monkeypatch: pytest.MonkeyPatch) -> Records:
    """The unaltered records, with the working directory in the project."""
    monkeypatch.chdir(template.root)
    return template


@pytest.fixture
def altered(template: Records, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Records:
    """A private copy of the records to alter, with the working directory in it."""
    copy = template.copy_to(tmp_path / "project")
    monkeypatch.chdir(copy.root)
    return copy
