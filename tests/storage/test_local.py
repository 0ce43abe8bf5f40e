"""LocalStore and what every store shares (nbops.storage.base), and open_store choosing one."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbops.errors import InputError
from nbops.storage import Attempt, Store, open_store
from nbops.storage.base import ENV_CACHE_DIR, cache_dir, sha256_matches_name
from nbops.storage.local import LocalStore
from nbops.storage.manifest import read_manifest
from tests.conftest import ROOT
from tests.storage.factory import manifest_of

pytestmark = pytest.mark.unit


def finish(store: LocalStore, run_id: str, finished_at: str, payload: str = "x") -> Attempt:
    attempt = store.claim("p", run_id, "s")
    (attempt.workdir / "outputs").mkdir()
    (attempt.workdir / "outputs" / "x.txt").write_text(payload)
    manifest = manifest_of(attempt.workdir, run_id=run_id, attempt=attempt.number, finished_at=finished_at)
    store.upload(attempt, manifest)
    store.seal(attempt, manifest)
    return attempt


def test_open_store_defaults_to_the_directory_beside_the_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path)
    assert isinstance(store, LocalStore) and isinstance(store, Store)
    assert store.local_root == tmp_path / ".nbops" / "artifacts"
    assert store.mlflow_location == (tmp_path / ".nbops" / "artifacts" / "mlflow").as_uri()
    monkeypatch.setenv("NBOPS_ARTIFACT_ROOT", f"file://{tmp_path / 'shared'}")
    assert open_store(tmp_path).local_root == tmp_path / "shared"
    monkeypatch.setenv("NBOPS_ARTIFACT_ROOT", "gs://bucket/x")
    with pytest.raises(InputError, match="remote artifact roots must be s3://"):
        open_store(tmp_path)


def test_the_package_loads_neither_pydantic_nor_fsspec_until_a_store_needs_them(tmp_path: Path) -> None:
    """The DAG factory imports nbops.storage.layout; a local root must not pay for fsspec."""
    code = (
        "import sys\n"
        "import nbops.storage.layout\n"
        "from nbops.storage import open_store, Store, Attempt\n"
        "early = sorted({'pydantic', 'fsspec'} & set(sys.modules))\n"
        "from pathlib import Path\n"
        f"open_store(Path({str(tmp_path)!r}))\n"
        "print(early, 'pydantic' in sys.modules, 'fsspec' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NBOPS_ARTIFACT_ROOT"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    assert out.stdout.split() == ["[]", "True", "False"]


def test_seal_is_what_makes_an_attempt_complete(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    assert store.completed("p", "r", "s") is None
    done = finish(store, "r", "2026-11-01T00:00:00+00:00")
    unsealed = store.claim("p", "r", "s")
    (unsealed.workdir / "output.ipynb").write_text("{}")
    assert (done.number, unsealed.number) == (1, 2)
    assert done.location == str(done.workdir) == str(tmp_path / "runs" / "p" / "r" / "s" / "attempt-1")
    assert store.completed("p", "r", "s") == done.workdir
    assert read_manifest(done.workdir).files[0].path == "outputs/x.txt"
    assert store.latest_run_key("p") == "r" and store.latest_run_key("q") is None
    assert store.run_location("p", "manual__2026-01-01T00:00:00+00:00").endswith(
        "/runs/p/manual__2026-01-01T00-00-00-00-00"
    )


def test_latest_completed_takes_the_manifest_that_finished_last(tmp_path: Path) -> None:
    """By the manifests' finished_at, as a remote store decides, not by file times."""
    store = LocalStore(tmp_path)
    assert store.latest_completed("p", "s") is None
    newer = finish(store, "20261101T000000Z-aaaaaa", "2026-11-03T00:00:00+00:00", "newer")
    older = finish(store, "20261102T000000Z-bbbbbb", "2026-11-02T00:00:00+00:00", "older")
    os.utime(newer.workdir / "manifest.json", (0, 0))  # file times say otherwise
    assert store.latest_completed("p", "s") == newer.workdir
    assert store.completed("p", "20261102T000000Z-bbbbbb", "s") == older.workdir


def test_latest_completed_refuses_an_unreadable_manifest(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    done = finish(store, "r", "2026-11-01T00:00:00+00:00")
    (done.workdir / "manifest.json").write_text('{"files": "everything"}')
    with pytest.raises(InputError, match="not a manifest this nbops can read"):
        store.latest_completed("p", "s")


def test_publish_writes_content_addressed_bytes_once(tmp_path: Path) -> None:
    raw = b'{"cells": []}'
    rel = f"notebooks/{hashlib.sha256(raw).hexdigest()}.ipynb"
    store = LocalStore(tmp_path)
    assert not store.fetch(rel).exists()
    assert store.publish(rel, raw) is True
    stamp = (tmp_path / rel).stat().st_mtime_ns
    assert store.publish(rel, raw) is False
    assert (tmp_path / rel).stat().st_mtime_ns == stamp  # an intact copy is not touched
    (tmp_path / rel).write_bytes(b"damaged")
    assert store.publish(rel, raw) is True
    assert store.fetch(rel).read_bytes() == raw
    assert sorted(os.listdir(tmp_path / "notebooks")) == [Path(rel).name]


def test_sha256_matches_name() -> None:
    raw = b"lock"
    sha = hashlib.sha256(raw).hexdigest()
    assert sha256_matches_name(raw, f"locks/{sha}.json")
    assert not sha256_matches_name(b"other", f"locks/{sha}.json")


def test_cache_dir_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_CACHE_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "nbops"
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
