"""The tamper matrix: for each kind of evidence a signed model's lineage holds, flip one byte and
the audit fails naming it (exit 4); restore it and the audit passes. On the local store and on
``s3://`` (an S3-compatible server started by the test). The promoted lock's copy is covered by
tests/airflow/test_dags_test.py, which audits a DAG run's model back to its lock."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nbops.audit import audit_model
from nbops.status import ExitCode
from tests.conftest import Project
from tests.s3server import BUCKET, S3Server, started

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HELPER = "def rows_of(n):\n    return [[i, i % 2] for i in range(n)]\n"
PREP = [
    ("rows: int = 20", ["parameters"]),
    (
        "import json, nbops\nfrom helpers import rows_of\n"
        "(nbops.output_dir() / 'data.json').write_text(json.dumps(rows_of(rows)))",
        [],
    ),
]
TRAIN = [
    ("C: float = 1.0", ["parameters"]),
    (
        "import json, nbops\nfrom sklearn.linear_model import LogisticRegression\n"
        "data = json.loads((nbops.input_dir('prep') / 'data.json').read_text())\n"
        "model = LogisticRegression(C=C).fit([[r[0]] for r in data], [r[1] for r in data])\n"
        "nbops.log_model(model, registered_model_name='toy-model')",
        [],
    ),
]

# (evidence, a pattern of its place relative to the artifact root, what the failing check names)
MATRIX = [
    ("model file", r"models/m-[^/]+/artifacts/model\.skops$", "model toy-model/1 file model.skops"),
    ("signature", r"models/m-[^/]+/artifacts/nbops-model\.sig$", "model toy-model/1 signature"),
    ("MLflow copy of the page", r"^mlflow/.+/artifacts/output\.html$", "MLflow copy output.html"),
    ("MLflow copy of the notebook", r"^mlflow/.+/artifacts/output\.ipynb$", "MLflow copy output.ipynb"),
    ("MLflow copy of the manifest", r"^mlflow/.+/artifacts/manifest\.json$", "manifest (MLflow record)"),
    ("store copy of the notebook", r"^runs/.+/prep/attempt-1/output\.ipynb$", "prep#1 file output.ipynb"),
    ("store copy of an output", r"^runs/.+/prep/attempt-1/outputs/data\.json$", "prep#1 file outputs/data.json"),
    ("store copy of the manifest", r"^runs/.+/prep/attempt-1/manifest\.json$", "prep#1 manifest"),
    ("source notebook", r"^notebooks/[0-9a-f]{64}\.ipynb$", "notebook copy"),
    ("helper file", r"^files/[0-9a-f]{64}$", "carried nb/helpers.py"),
    ("spec copy", r"^specs/[0-9a-f]{64}\.yaml$", "spec copy"),
]


@dataclass
class Evidence:
    """Where the run's evidence lives, read and written byte for byte."""

    names: Callable[[], list[str]]
    read: Callable[[str], bytes]
    write: Callable[[str, bytes], None]

    def find(self, pattern: str) -> str:
        found = sorted(n for n in self.names() if re.search(pattern, n))
        assert found, (pattern, self.names())
        return found[0]


@dataclass
class Signed:
    project: Project
    env: dict[str, str]
    evidence: Evidence


def keys(directory: Path) -> tuple[Path, Path]:
    """A P-256 key pair as PEM files: (private, public)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = directory / "signing.pem", directory / "verify.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def run_signed(root: Path, env: dict[str, str]) -> tuple[Project, dict[str, str]]:
    """The two-stage project run once with a signing key; the environment its audit needs."""
    project = Project(root)
    (root / "nb").mkdir(parents=True, exist_ok=True)
    (root / "nb" / "helpers.py").write_text(HELPER)
    prep, train = project.add_notebook("prep", PREP), project.add_notebook("train", TRAIN)
    project.write_spec(
        {"name": "tamper", "stages": {"prep": {"notebook": prep}, "train": {"notebook": train, "needs": ["prep"]}}}
    )
    private, public = keys(root)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_", "AWS_"))}
    result = subprocess.run(
        [sys.executable, "-m", "nbops", "run"],
        cwd=root,
        env={**base, **env, "NBOPS_SIGNING_KEY": str(private)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return project, {**env, "NBOPS_VERIFY_KEY": str(public)}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    project, env = run_signed(tmp_path_factory.mktemp("tamper-local"), {})
    root = project.root / ".nbops" / "artifacts"
    evidence = Evidence(
        names=lambda: [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()],
        read=lambda name: (root / name).read_bytes(),
        write=lambda name, raw: (root / name).write_bytes(raw),
    )
    return Signed(project, env, evidence)


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signed]:
    for s3 in started():
        env = {**s3.env(), "NBOPS_ARTIFACT_ROOT": f"s3://{BUCKET}/store"}
        root = tmp_path_factory.mktemp("tamper-s3")
        project, env = run_signed(root, {**env, "NBOPS_CACHE_DIR": str(root / "cache")})
        yield Signed(project, env, _s3_evidence(s3))


def _s3_evidence(s3: S3Server) -> Evidence:
    import boto3

    client = boto3.client("s3", **s3.client_kwargs())

    def names() -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="store/")
        return [o["Key"].removeprefix("store/") for page in pages for o in page.get("Contents", [])]

    return Evidence(
        names=names,
        read=lambda name: s3.object(f"store/{name}"),
        write=lambda name, raw: s3.put(f"store/{name}", raw),
    )


def failed_subjects(signed: Signed, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The audit of toy-model/1, in this process, as the project's environment has it."""
    for name, value in signed.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(signed.project.root)
    report = audit_model("toy-model/1")
    assert report.exit_code in (ExitCode.OK, ExitCode.AUDIT), report.to_text()
    return [c.subject for c in report.checks if not c.ok]


def flip(raw: bytes) -> bytes:
    """One byte changed, in the middle."""
    middle = len(raw) // 2
    return raw[:middle] + bytes([raw[middle] ^ 0x01]) + raw[middle + 1 :]


def check_matrix(signed: Signed, monkeypatch: pytest.MonkeyPatch) -> None:
    assert failed_subjects(signed, monkeypatch) == []
    for evidence, pattern, named in MATRIX:
        name = signed.evidence.find(pattern)
        original = signed.evidence.read(name)
        signed.evidence.write(name, flip(original))
        try:
            failed = failed_subjects(signed, monkeypatch)
        finally:
            signed.evidence.write(name, original)
        assert any(named in subject for subject in failed), (evidence, name, failed)
        assert failed_subjects(signed, monkeypatch) == [], (evidence, "restored")


def test_every_kind_of_evidence_altered_fails_the_audit_on_the_local_store(
    local: Signed, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_matrix(local, monkeypatch)


def test_every_kind_of_evidence_altered_fails_the_audit_on_s3(remote: Signed, monkeypatch: pytest.MonkeyPatch) -> None:
    check_matrix(remote, monkeypatch)


def test_a_signature_made_with_another_key_does_not_verify(
    local: Signed, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _, other = keys(tmp_path)
    monkeypatch.setitem(local.env, "NBOPS_VERIFY_KEY", str(other))
    failed = failed_subjects(local, monkeypatch)
    assert failed == ["train#1 model toy-model/1 signature"], failed
