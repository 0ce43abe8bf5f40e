"""Artifact store faults, against an S3-compatible server (moto) that the test starts on
127.0.0.1 with faults injected in front of it: writes are retried with backoff, a failed
upload leaves no manifest, a retry is a new attempt that never reads the failed one, and a
downstream stage refuses an upstream without a manifest, naming it."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbops.errors import InputError
from nbops.promote import promote
from nbops.retry import ARTIFACT_STORE
from nbops.storage.remote import RemoteStore
from tests.conftest import Project, free_port
from tests.s3server import BUCKET, Fault, S3Server, started
from tests.storage.factory import fields

pytestmark = [pytest.mark.integration]

ROOT = f"s3://{BUCKET}/store"
PAYLOAD = "payload-42"


@pytest.fixture
def s3() -> Iterator[S3Server]:
    yield from started()


@pytest.fixture
def two_stages(project: Project) -> Project:
    project.add_notebook(
        "up",
        [(f"import nbops\n(nbops.output_dir() / 'data.txt').write_text({PAYLOAD!r})\nnbops.log_metric('rows', 3)", [])],
    )
    project.add_notebook(
        "down",
        [
            (
                "import nbops\nsrc = nbops.input_dir('up')\nprint(src)\nassert (src / 'data.txt').read_text() == "
                + repr(PAYLOAD),
                [],
            )
        ],
    )
    project.write_spec(
        {
            "name": "remote",
            "stages": {"up": {"notebook": "nb/up.ipynb"}, "down": {"notebook": "nb/down.ipynb", "needs": ["up"]}},
        }
    )
    return project


def nbops(
    project: Project, s3: S3Server, *args: str, cache: str = "cache", extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real command line with the store on the test's S3 server and its own local cache."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_", "AWS_"))}
    env = {
        **base,
        **s3.env(),
        "NBOPS_ARTIFACT_ROOT": ROOT,
        "NBOPS_CACHE_DIR": str(project.root / cache),
        **(extra or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "nbops", *args],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def exec_stage(
    project: Project, s3: S3Server, stage: str, run_id: str = "r1", **kw: object
) -> subprocess.CompletedProcess[str]:
    return nbops(project, s3, "exec-stage", "--pipeline", "pipeline.yaml", "--stage", stage, "--run-id", run_id, **kw)  # type: ignore[arg-type]


def attempt_prefix(stage: str, attempt: int, run: str = "r1") -> str:
    return f"store/runs/remote/{run}/{stage}/attempt-{attempt}/"


def stage_runs(project: Project) -> list:
    return [r for r in project.runs("remote") if r.data.tags.get("nbops.kind") == "stage"]


def test_a_pipeline_on_s3_stores_every_attempt_manifest_last(two_stages: Project, s3: S3Server) -> None:
    """Each stage in its own cache (as in separate pods): the downstream stage downloads and checks."""
    up = exec_stage(two_stages, s3, "up", cache="cache-up")
    assert up.returncode == 0, up.stderr
    down = exec_stage(two_stages, s3, "down", cache="cache-down")
    assert down.returncode == 0, down.stderr
    for stage in ("up", "down"):
        keys = s3.keys(attempt_prefix(stage, 1))
        names = [k.removeprefix(attempt_prefix(stage, 1)) for k in keys]
        assert {".claim", "output.ipynb", "output.html", "manifest.json"} <= set(names)
        puts = [
            path for _, path, status, _ in s3.faults.requests("PUT", f"/{attempt_prefix(stage, 1)}") if status == 200
        ]
        assert puts[-1].endswith("/manifest.json")  # written last, after every file it lists
    manifest = json.loads(s3.object(attempt_prefix("up", 1) + "manifest.json"))
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert set(listed) == {"attempt.json", "output.ipynb", "output.html", "outputs/data.txt"}
    for path, sha in listed.items():
        assert hashlib.sha256(s3.object(attempt_prefix("up", 1) + path)).hexdigest() == sha
    # the downstream pod fetched the upstream outputs from the store, into its own cache
    assert s3.faults.requests("GET", f"/{attempt_prefix('up', 1)}outputs/data.txt")
    fetched = list((two_stages.root / "cache-down").rglob("up/attempt-1/outputs/data.txt"))
    assert [p.read_text() for p in fetched] == [PAYLOAD]
    # MLflow's artifacts went to the same store
    runs = stage_runs(two_stages)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert all(r.info.artifact_uri.startswith(f"{ROOT}/mlflow/") for r in runs)
    assert any(k.endswith("/artifacts/output.ipynb") for k in s3.keys("store/mlflow/"))


def test_transient_write_faults_are_retried_with_backoff(two_stages: Project, s3: S3Server) -> None:
    fault = s3.faults.add(Fault("PUT", r"/attempt-1/outputs/data\.txt$", status=500, times=2))
    started_at = time.monotonic()
    result = exec_stage(two_stages, s3, "up")
    assert result.returncode == 0, result.stderr
    assert fault.hits == 2  # two writes failed; nbops backed off (1 s, 2 s) and wrote again
    tries = s3.faults.requests("PUT", r"/attempt-1/outputs/data\.txt$")
    assert [status for _, _, status, _ in tries] == [500, 500, 200]
    gaps = [later[3] - earlier[3] for earlier, later in itertools.pairwise(tries)]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9  # exponential backoff, 1 s then 2 s
    assert s3.keys(attempt_prefix("up", 1) + "manifest.json")
    assert time.monotonic() - started_at < 120


@pytest.mark.slow
@pytest.mark.parametrize(
    ("broken", "status"),
    [(r"/attempt-1/outputs/", "upload_failed"), (r"/attempt-1/manifest\.json$", "seal_failed")],
    ids=["outputs", "manifest"],
)
def test_a_failed_upload_leaves_no_manifest_and_the_retry_is_a_new_attempt(
    two_stages: Project, s3: S3Server, broken: str, status: str
) -> None:
    fault = s3.faults.add(Fault("PUT", broken, status=500))
    started_at = time.monotonic()
    failed = exec_stage(two_stages, s3, "up")
    elapsed = time.monotonic() - started_at
    assert failed.returncode == 3, failed.stderr
    assert f"after {ARTIFACT_STORE.attempts} attempts" in failed.stderr
    assert fault.hits == ARTIFACT_STORE.attempts  # each of nbops's attempts reached the store, no more
    tries = [t for *_, t in s3.faults.requests("PUT", broken)]
    assert tries[-1] - tries[0] >= 1 + 2 + 4 + 8 - 0.5  # backed off between them
    assert elapsed < 120  # bounded: backoff 1+2+4+8 s plus the stage itself
    assert not s3.keys(attempt_prefix("up", 1) + "manifest.json")
    [run] = stage_runs(two_stages)
    assert run.info.status == "FAILED" and run.data.tags["nbops.status"] == status

    s3.faults.clear()
    refused = exec_stage(two_stages, s3, "down", cache="cache-down")
    assert refused.returncode == 2
    assert "needs 'up', which has no completed attempt (no manifest.json)" in refused.stderr
    assert not s3.keys(attempt_prefix("down", 1)) or not s3.keys(attempt_prefix("down", 1) + "manifest.json")

    before = {k: s3.object(k) for k in s3.keys(attempt_prefix("up", 1))}
    retry = exec_stage(two_stages, s3, "up")
    assert retry.returncode == 0, retry.stderr
    assert s3.keys(attempt_prefix("up", 2) + "manifest.json")
    assert {k: s3.object(k) for k in s3.keys(attempt_prefix("up", 1))} == before  # the failed attempt untouched

    gets_before = len(s3.faults.requests("GET", f"/{attempt_prefix('up', 1)}outputs/"))
    down = exec_stage(two_stages, s3, "down", cache="cache-down-2")
    assert down.returncode == 0, down.stderr
    assert len(s3.faults.requests("GET", f"/{attempt_prefix('up', 1)}outputs/")) == gets_before  # never read
    assert s3.faults.requests("GET", f"/{attempt_prefix('up', 2)}outputs/data.txt")


def test_an_upstream_changed_after_it_finished_is_refused(two_stages: Project, s3: S3Server) -> None:
    assert exec_stage(two_stages, s3, "up").returncode == 0
    s3.put(attempt_prefix("up", 1) + "outputs/data.txt", b"tampered")
    result = exec_stage(two_stages, s3, "down", cache="cache-down")
    assert result.returncode == 2
    assert f"{ROOT}/runs/remote/r1/up/attempt-1/outputs/data.txt: sha256" in result.stderr
    assert "does not match its manifest" in result.stderr


def test_store_unreachable_at_start_fails_before_a_kernel_starts(two_stages: Project, s3: S3Server) -> None:
    dead = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}  # nothing listens there
    started_at = time.monotonic()
    result = exec_stage(two_stages, s3, "up", extra=dead)
    elapsed = time.monotonic() - started_at
    assert result.returncode == 3, result.stderr
    # The first read is the lookup of a completed attempt to reuse, before anything is claimed.
    assert re.search(
        rf"artifact store: cannot read {re.escape(ROOT)}/cache/remote/up/[0-9a-f]{{64}}\.json "
        rf"after {ARTIFACT_STORE.attempts} attempts",
        result.stderr,
    ), result.stderr
    assert "attempt 1" not in result.stderr  # nothing claimed
    assert elapsed < 60  # bounded: backoff 1+2+4+8 s plus start-up
    assert not stage_runs(two_stages)


def test_concurrent_claims_never_share_an_attempt(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    numbers: list[int] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        store = RemoteStore(ROOT, tmp_path / "cache")
        barrier.wait()
        numbers.append(store.claim("remote", "r1", "up").number)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(numbers) == list(range(1, 9))
    assert len(s3.keys("store/runs/remote/r1/up/")) == 8  # one claim object each


def test_promoted_stage_reads_the_lock_and_notebook_from_s3(
    two_stages: Project, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        **s3.env(),
        "NBOPS_ARTIFACT_ROOT": ROOT,
        "NBOPS_CACHE_DIR": str(two_stages.root / "cache-promote"),
    }.items():
        monkeypatch.setenv(name, value)
    sha = promote(two_stages.pipeline, two_stages.root / "dags").lock_sha256
    assert s3.keys(f"store/locks/{sha}.json")
    assert len(s3.keys("store/notebooks/")) == 2
    extra = {"MLFLOW_TRACKING_URI": two_stages.tracking_uri}
    notebook_gets = len(s3.faults.requests("GET", "/store/notebooks/"))
    for stage in ("up", "down"):
        result = nbops(
            two_stages,
            s3,
            "exec-stage",
            "--promoted",
            sha,
            "--stage",
            stage,
            "--run-id",
            "r1",
            cache=f"pod-{stage}",
            extra=extra,
        )
        assert result.returncode == 0, result.stderr
        assert s3.keys(attempt_prefix(stage, 1) + "manifest.json")
        assert len(s3.faults.requests("GET", "/store/notebooks/")) == notebook_gets + 1  # its own notebook only
        notebook_gets += 1


def test_unsafe_or_malformed_manifests_are_refused(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    store = RemoteStore(ROOT, tmp_path / "cache")
    prefix = "store/runs/remote/r1/up/attempt-1/"
    s3.put(prefix + "escape", b"x")
    sha = hashlib.sha256(b"x").hexdigest()
    bad = [
        ({**fields(), "files": [{"path": "../../escape", "sha256": sha, "size": 1}]}, "contains '..'"),
        ({**fields(), "files": [{"path": "/etc/passwd", "sha256": sha, "size": 1}]}, "is absolute"),
        ({**fields(), "files": "everything"}, "files: Input should be a valid tuple"),
        (["not", "a", "manifest"], "Input should be a valid dictionary"),
    ]
    for manifest, problem in bad:
        s3.put(prefix + "manifest.json", json.dumps(manifest).encode())
        with pytest.raises(InputError, match=problem) as caught:
            store.completed("remote", "r1", "up")
        assert str(caught.value).startswith(f"{ROOT}/runs/remote/r1/up/attempt-1/manifest.json: not a manifest")
    assert not list((tmp_path / "cache").rglob("escape"))


def test_a_missing_bucket_is_exit_3_naming_the_store(two_stages: Project, s3: S3Server) -> None:
    result = exec_stage(two_stages, s3, "up", extra={"NBOPS_ARTIFACT_ROOT": "s3://no-such-bucket/store"})
    assert result.returncode == 3, result.stderr
    assert "artifact store: cannot claim s3://no-such-bucket/store/runs/remote/r1/up/attempt-1" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("url", ["gs://bucket/x", "memory://x", "ftp://host/x"])
def test_roots_without_atomic_claims_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="remote artifact roots must be s3://"):
        RemoteStore(url, tmp_path)


def test_nbops_run_on_s3_and_resume_from_a_stage(two_stages: Project, s3: S3Server) -> None:
    """The local runner on a remote root: logs in the local mirror, resume finds the run in S3."""
    first = nbops(two_stages, s3, "run", "pipeline.yaml", "--run-id", "r1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert s3.keys(attempt_prefix("up", 1) + "manifest.json") and s3.keys(attempt_prefix("down", 1) + "manifest.json")
    assert list((two_stages.root / "cache").rglob("runs/remote/r1/.logs/*"))
    again = nbops(two_stages, s3, "run", "pipeline.yaml", "--from", "down", cache="other-cache")
    assert again.returncode == 0, again.stdout + again.stderr
    assert s3.keys(attempt_prefix("down", 2) + "manifest.json")  # the latest run, found in the store
    assert not s3.keys(attempt_prefix("up", 2))
    # The audit reads the same S3 root: the resumed run verifies, an altered object fails it.
    audited = nbops(two_stages, s3, "audit", "--run", "r1", cache="audit-cache")
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert f"{ROOT}/runs/remote/r1/up/attempt-1" in audited.stdout
    s3.put(attempt_prefix("up", 1) + "outputs/data.txt", b"changed")
    tampered = nbops(two_stages, s3, "audit", "--run", "r1", cache="audit-cache")
    assert tampered.returncode == 4, tampered.stdout + tampered.stderr
    assert f"{ROOT}/runs/remote/r1/up/attempt-1/outputs/data.txt has sha256" in tampered.stdout
