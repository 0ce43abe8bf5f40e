from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from nbops.errors import InputError
from nbops.storage import layout
from nbops.storage.manifest import build_manifest, read_manifest, write_manifest

pytestmark = pytest.mark.unit


def test_run_key_strips_airflow_characters() -> None:
    assert layout.run_key("manual__2026-01-01T00:00:00+00:00") == "manual__2026-01-01T00-00-00-00-00"
    with pytest.raises(InputError):
        layout.run_key("::")


def test_new_run_ids_sort_by_time() -> None:
    from datetime import UTC, datetime

    a = layout.new_run_id(datetime(2026, 1, 1, tzinfo=UTC))
    b = layout.new_run_id(datetime(2026, 1, 2, tzinfo=UTC))
    assert a < b and a.startswith("20260101T000000Z-")


def test_concurrent_claims_never_share_an_attempt(tmp_path: Path) -> None:
    claimed: list[int] = []

    def claim() -> None:
        claimed.append(layout.claim_attempt(tmp_path / "stage")[0])

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == list(range(1, 17))


def test_only_attempts_with_manifest_count(tmp_path: Path) -> None:
    stage = tmp_path / "runs" / "p" / "r1" / "s"
    _, first = layout.claim_attempt(stage)
    (first / "outputs").mkdir()
    (first / "outputs" / "a.txt").write_text("a")
    body = build_manifest(first, {"stage": "s"})
    write_manifest(first, body)
    _, second = layout.claim_attempt(stage)  # never finished
    assert layout.latest_complete(stage) == first
    assert layout.latest_complete_any_run(tmp_path, "p", "s") == first
    assert read_manifest(first)["files"][0]["path"] == "outputs/a.txt"
    with pytest.raises(InputError, match="did not finish"):
        read_manifest(second)
    assert json.loads((first / "manifest.json").read_text())["files"][0]["size"] == 1


def test_artifact_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert layout.artifact_root(tmp_path) == tmp_path / ".nbops" / "artifacts"
    monkeypatch.setenv("NBOPS_ARTIFACT_ROOT", str(tmp_path / "elsewhere"))
    assert layout.artifact_root(tmp_path) == tmp_path / "elsewhere"
    monkeypatch.setenv("NBOPS_ARTIFACT_ROOT", "s3://bucket/x")
    with pytest.raises(InputError, match="NBOPS_ARTIFACT_ROOT"):
        layout.artifact_root(tmp_path)
