"""RemoteStore against moto's S3 on 127.0.0.1: the layout, manifest-last sealing, readers
that take the newest manifest, and content-addressed publishing with a local cache."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbops.errors import InfraError
from nbops.retry import ARTIFACT_STORE, ENV_RETRY_SCALE
from nbops.storage import open_store
from nbops.storage.manifest import ManifestFile, read_manifest
from nbops.storage.remote import RemoteStore
from tests.s3server import BUCKET, Fault, S3Server, started
from tests.storage.factory import manifest_of

pytestmark = pytest.mark.integration

ROOT = f"s3://{BUCKET}/unit"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    for server in started():
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield server


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def finish(store: RemoteStore, run_id: str, stage: str, payload: str, finished_at: str) -> Path:
    attempt = store.claim("p", run_id, stage)
    (attempt.workdir / "outputs").mkdir()
    (attempt.workdir / "outputs" / "x.txt").write_text(payload)
    manifest = manifest_of(attempt.workdir, run_id=run_id, stage=stage, finished_at=finished_at)
    store.upload(attempt, manifest)
    store.seal(attempt, manifest)
    return attempt.workdir


def test_open_store_picks_the_remote_store(s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBOPS_ARTIFACT_ROOT", ROOT)
    monkeypatch.setenv("NBOPS_CACHE_DIR", str(tmp_path / "cache"))
    store = open_store(tmp_path)
    assert isinstance(store, RemoteStore)
    assert store.mlflow_location == f"{ROOT}/mlflow"
    assert store.local_root.parent == tmp_path / "cache"


def test_readers_take_the_newest_manifest_and_check_it(s3: S3Server, tmp_path: Path) -> None:
    writer = RemoteStore(ROOT, tmp_path / "writer")
    finish(writer, "20261101T000000Z-aaaaaa", "up", "old", "2026-11-01T00:00:00+00:00")
    finish(writer, "20261102T000000Z-bbbbbb", "up", "new", "2026-11-02T00:00:00+00:00")
    unsealed = writer.claim("p", "20261102T000000Z-bbbbbb", "up")  # attempt 2, never sealed
    (unsealed.workdir / "outputs").mkdir()
    (unsealed.workdir / "outputs" / "x.txt").write_text("half")
    writer.upload(unsealed)
    assert unsealed.number == 2

    reader = RemoteStore(ROOT, tmp_path / "reader")  # another machine: an empty cache
    done = reader.completed("p", "20261102T000000Z-bbbbbb", "up")
    assert done is not None and done.name == "attempt-1"
    assert (done / "outputs" / "x.txt").read_text() == "new"
    stored = s3.object("unit/runs/p/20261102T000000Z-bbbbbb/up/attempt-1/manifest.json")
    assert (done / "manifest.json").read_bytes() == stored  # mirrored last, byte for byte
    assert read_manifest(done).files == (ManifestFile(path="outputs/x.txt", size=3, sha256=sha("new")),)
    latest = reader.latest_completed("p", "up")
    assert latest is not None and (latest / "outputs" / "x.txt").read_text() == "new"
    assert reader.latest_run_key("p") == "20261102T000000Z-bbbbbb"
    assert reader.completed("p", "20261102T000000Z-bbbbbb", "down") is None
    assert reader.latest_completed("p", "down") is None and reader.latest_run_key("other") is None


def test_publish_and_fetch_content_addressed_files(s3: S3Server, tmp_path: Path) -> None:
    raw = b'{"cells": []}'
    rel = f"notebooks/{hashlib.sha256(raw).hexdigest()}.ipynb"
    store = RemoteStore(ROOT, tmp_path / "cache")
    assert store.publish(rel, raw) is True
    assert store.publish(rel, raw) is False  # an intact copy is there
    s3.put(f"unit/{rel}", b"damaged")
    assert store.publish(rel, raw) is True  # a damaged copy is rewritten
    local = RemoteStore(ROOT, tmp_path / "other").fetch(rel)
    assert local.read_bytes() == raw
    local.write_bytes(b"damaged in the cache")
    assert RemoteStore(ROOT, tmp_path / "other").fetch(rel).read_bytes() == raw  # the store's copy decides
    missing = store.fetch("locks/" + "0" * 64 + ".json")
    assert not missing.exists()


def test_a_changed_file_is_not_uploaded_as_sealed(s3: S3Server, tmp_path: Path) -> None:
    store = RemoteStore(ROOT, tmp_path / "cache")
    attempt = store.claim("p", "r", "up")
    (attempt.workdir / "out.txt").write_text("v1")
    manifest = manifest_of(attempt.workdir)
    (attempt.workdir / "out.txt").write_text("v2")
    with pytest.raises(InfraError, match="changed after the manifest was built"):
        store.upload(attempt, manifest)
    assert s3.keys("unit/runs/p/r/up/attempt-1/") == ["unit/runs/p/r/up/attempt-1/.claim"]
    assert json.loads(s3.object("unit/runs/p/r/up/attempt-1/.claim")) == {"pipeline": "p", "run_id": "r", "stage": "up"}


def test_the_sealed_manifest_is_its_canonical_bytes(s3: S3Server, tmp_path: Path) -> None:
    store = RemoteStore(ROOT, tmp_path / "cache")
    attempt = store.claim("p", "r", "up")
    (attempt.workdir / "output.ipynb").write_text("{}")
    manifest = manifest_of(attempt.workdir, stage="up")
    store.upload(attempt, manifest)
    store.seal(attempt, manifest)
    stored = s3.object("unit/runs/p/r/up/attempt-1/manifest.json")
    assert stored == manifest.to_bytes() and hashlib.sha256(stored).hexdigest() == manifest.sha256


def test_store_calls_follow_the_artifact_store_policy(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two transient faults are ridden out; a lasting one fails after exactly ARTIFACT_STORE.attempts tries."""
    monkeypatch.setenv(ENV_RETRY_SCALE, "0.01")  # the real waits are covered by tests/faults
    store = RemoteStore(ROOT, tmp_path / "cache")
    brief = s3.faults.add(Fault("PUT", r"/notebooks/", status=503, times=2))
    raw = b"{}"
    rel = f"notebooks/{hashlib.sha256(raw).hexdigest()}.ipynb"
    assert store.publish(rel, raw) is True
    assert brief.hits == 2 and s3.object(f"unit/{rel}") == raw
    lasting = s3.faults.add(Fault("PUT", r"/locks/", status=500))
    with pytest.raises(
        InfraError, match=rf"cannot upload {ROOT}/locks/x\.json after {ARTIFACT_STORE.attempts} attempts"
    ):
        store.publish("locks/x.json", b"{}")
    assert lasting.hits == ARTIFACT_STORE.attempts


def test_a_start_record_and_checkpoints_reach_the_store_while_the_attempt_runs(s3: S3Server, tmp_path: Path) -> None:
    writer, reader = RemoteStore(ROOT, tmp_path / "writer"), RemoteStore(ROOT, tmp_path / "reader")
    attempt = writer.claim("p", "r", "up")
    rel = "runs/p/r/up/attempt-1"
    writer.begin(attempt, b'{"start": 1}\n')
    assert reader.read_bytes(f"{rel}/attempt.json") == b'{"start": 1}\n'  # before any upload
    assert reader.attempt_numbers("p", "r", "up") == [1] and reader.completed("p", "r", "up") is None
    for cells in ("one", "two"):
        (attempt.workdir / "output.ipynb").write_text(cells)
        writer.checkpoint(attempt, "output.ipynb")
        assert reader.read_bytes(f"{rel}/output.ipynb") == cells.encode()
    writer.claim("p", "r", "up")
    assert reader.attempt_numbers("p", "r", "up") == [1, 2]
