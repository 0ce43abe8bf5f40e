"""The lock: canonical text, and clear refusals of anything that is not a lock nbops wrote."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from nbops.errors import InputError
from nbops.lock import fetch_lock, parse_lock, read_lock
from nbops.promote import promote
from nbops.storage.local import LocalStore
from tests.conftest import Project

pytestmark = pytest.mark.unit


@pytest.fixture
def lock_file(project: Project) -> Path:
    project.add_notebook("a", [("k = 2", ["parameters"])])
    project.write_spec({"name": "lk", "stages": {"a": {"notebook": "nb/a.ipynb"}}})
    promote(project.pipeline, project.root / "dags")
    return project.root / "dags" / "lk.lock.json"


def test_lock_text_is_canonical(lock_file: Path) -> None:
    lock, sha = read_lock(lock_file)
    assert lock.to_text().encode() == lock_file.read_bytes()
    assert sha == hashlib.sha256(lock_file.read_bytes()).hexdigest()
    assert lock.stages["a"].settings.timeout == 3600


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not a JSON lock file"),
        (b'{"lock_version": 2}', "not a lock this nbops can read"),
        (b"\xff\xfe", "not a JSON lock file"),
    ],
)
def test_bad_locks_name_the_file(tmp_path: Path, raw: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        parse_lock(raw, tmp_path / "x.lock.json")
    assert str(tmp_path / "x.lock.json") in str(caught.value)


def test_published_lock_must_hash_to_its_name(lock_file: Path, project: Project) -> None:
    root = project.root / ".nbops" / "artifacts"
    _, sha = read_lock(lock_file)
    lock, path = fetch_lock(LocalStore(root), sha)
    assert lock.pipeline(path, LocalStore(root), "a").frozen["a"].sha256 == read_lock(lock_file)[0].stages["a"].sha256
    published = root / "locks" / f"{sha}.json"
    published.write_bytes(published.read_bytes() + b" ")
    with pytest.raises(InputError, match="the published lock was changed"):
        fetch_lock(LocalStore(root), sha)


def test_dag_factory_names_a_broken_lock(tmp_path: Path) -> None:
    from nbops.airflow.dag import LockFormatError, dag_from_lock

    bad = tmp_path / "p.lock.json"
    bad.write_text('{"lock_version": 1, "spec": {}}')
    with pytest.raises(LockFormatError, match="Run `nbops promote` again") as caught:
        dag_from_lock(bad)
    assert str(bad) in str(caught.value)
