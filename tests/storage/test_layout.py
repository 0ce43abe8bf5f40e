from __future__ import annotations

import threading
from pathlib import Path

import pytest

from nbops.errors import InputError
from nbops.storage import layout
from nbops.storage.manifest import write_manifest
from tests.storage.factory import manifest_of

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
    assert layout.latest_complete(stage) is None
    _, first = layout.claim_attempt(stage)
    write_manifest(first, manifest_of(first))
    _, second = layout.claim_attempt(stage)  # never finished
    (second / "output.ipynb").write_text("{}")
    assert [n for n, _ in layout.attempts(stage)] == [1, 2]
    assert layout.latest_complete(stage) == first


def test_artifact_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert layout.artifact_root(tmp_path) == tmp_path / ".nbops" / "artifacts"
    monkeypatch.setenv("NBOPS_ARTIFACT_ROOT", str(tmp_path / "elsewhere"))
    assert layout.artifact_root(tmp_path) == tmp_path / "elsewhere"
    monkeypatch.setenv("NBOPS_ARTIFACT_ROOT", "s3://bucket/x")
    with pytest.raises(InputError, match="NBOPS_ARTIFACT_ROOT"):
        layout.artifact_root(tmp_path)


def test_attempt_number_is_read_from_the_directory_name(tmp_path: Path) -> None:
    assert layout.attempt_number(tmp_path / "runs" / "p" / "r" / "s" / "attempt-12") == 12
    with pytest.raises(ValueError, match="not an attempt directory"):
        layout.attempt_number(tmp_path / "outputs")


def test_the_latest_run_leaves_monitor_runs_out() -> None:
    from nbops.storage.layout import latest_training_run

    names = ["20261101T000000Z-aaaaaa", "20261102T000000Z-bbbbbb", "monitor__20261103T000000Z-cccccc"]
    assert latest_training_run(names) == "20261102T000000Z-bbbbbb"
    assert latest_training_run(["monitor__20261103T000000Z-cccccc"]) is None
