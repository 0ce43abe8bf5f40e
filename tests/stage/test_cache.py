"""The key of an attempt and the index of completed ones, on a local and a remote (moto S3) store."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbops.stage import cache
from nbops.storage import Store
from nbops.storage.local import LocalStore
from nbops.storage.manifest import ManifestInput
from nbops.storage.remote import RemoteStore
from tests.s3server import BUCKET, started
from tests.storage.factory import manifest_of

SHA = hashlib.sha256(b"x").hexdigest()
BASE: dict[str, Any] = {
    "pipeline": "p",
    "stage": "s",
    "notebook_sha256": SHA,
    "files": [("nb/helpers.py", SHA)],
    "parameters": {"n": 3, "as_of": "2026-07-01"},
    "inputs": [ManifestInput(stage="up", attempt=1, manifest_sha256=SHA, location="/x")],
    "environment_id": "image:runner:0.1",
}


@pytest.mark.unit
@pytest.mark.parametrize(
    "change",
    [
        {"notebook_sha256": hashlib.sha256(b"y").hexdigest()},
        {"files": [("nb/helpers.py", hashlib.sha256(b"y").hexdigest())]},
        {"files": []},
        {"parameters": {"n": 4, "as_of": "2026-07-01"}},
        {"parameters": {"n": 3, "as_of": "2026-07-02"}},
        {"inputs": [ManifestInput(stage="up", attempt=2, manifest_sha256=hashlib.sha256(b"y").hexdigest())]},
        {"environment_id": "image:runner:0.2"},
        {"stage": "t"},
    ],
)
def test_every_part_of_the_key_changes_it(change: dict[str, Any]) -> None:
    assert cache.stage_key(**{**BASE, **change}) != cache.stage_key(**BASE)


@pytest.mark.unit
def test_the_key_ignores_order_and_where_an_input_was_read() -> None:
    moved = ManifestInput(stage="up", attempt=1, manifest_sha256=SHA, location="s3://elsewhere/x")
    same = {**BASE, "parameters": {"as_of": "2026-07-01", "n": 3}, "inputs": [moved]}
    assert cache.stage_key(**same) == cache.stage_key(**BASE)


def sealed(store: Store, key: str | None, run_id: str = "r1", **overrides: Any) -> tuple[Path, Any]:
    attempt = store.claim("p", run_id, "s")
    (attempt.workdir / "outputs").mkdir(exist_ok=True)
    (attempt.workdir / "outputs" / "x.txt").write_text("out")
    manifest = manifest_of(attempt.workdir, run_id=run_id, attempt=attempt.number, cache_key=key, **overrides)
    store.upload(attempt, manifest)
    store.seal(attempt, manifest)
    cache.remember(store, manifest)
    return attempt.workdir, manifest


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    if request.param == "local":
        yield LocalStore(tmp_path / "artifacts")
        return
    for server in started():
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield RemoteStore(f"s3://{BUCKET}/cache-{tmp_path.name}", tmp_path / "mirror")


def test_a_sealed_attempt_is_found_by_its_key(store: Store) -> None:
    key = cache.stage_key(**BASE)
    _, manifest = sealed(store, key)
    hit = cache.lookup(store, "p", "s", key)
    assert hit is not None
    assert (hit.run_id, hit.manifest.attempt, hit.manifest_sha256) == ("r1", 1, manifest.sha256)
    assert (hit.attempt_dir / "outputs" / "x.txt").read_text() == "out"
    assert hit.reused().mlflow_run_id == manifest.mlflow_run_id
    assert cache.lookup(store, "p", "s", cache.stage_key(**{**BASE, "stage": "t"})) is None


def test_the_newest_attempt_under_a_key_wins(store: Store) -> None:
    key = cache.stage_key(**BASE)
    sealed(store, key, run_id="r1")
    sealed(store, key, run_id="r2")
    hit = cache.lookup(store, "p", "s", key)
    assert hit is not None and hit.run_id == "r2"


def test_an_attempt_without_a_key_is_never_indexed(store: Store) -> None:
    sealed(store, None)
    key = cache.stage_key(**BASE)
    assert store.read_bytes(cache.index_rel("p", "s", key)) is None


def test_an_entry_whose_attempt_changed_or_vanished_is_a_miss(store: Store, tmp_path: Path) -> None:
    key = cache.stage_key(**BASE)
    sealed(store, key)
    entry = json.loads(store.read_bytes(cache.index_rel("p", "s", key)) or b"{}")
    store.put(cache.index_rel("p", "s", key), json.dumps({**entry, "manifest_sha256": SHA}).encode())
    assert cache.lookup(store, "p", "s", key) is None  # the manifest no longer hashes to the entry
    store.put(cache.index_rel("p", "s", key), json.dumps({**entry, "attempt": 7}).encode())
    assert cache.lookup(store, "p", "s", key) is None  # no such attempt
    store.put(cache.index_rel("p", "s", key), b"not json")
    assert cache.lookup(store, "p", "s", key) is None
