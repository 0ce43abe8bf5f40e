"""The typed manifest: what it lists, its canonical bytes, and the manifests it refuses."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from nbops.errors import InputError
from nbops.storage.atomic import temp_path
from nbops.storage.manifest import (
    Manifest,
    ManifestFile,
    ManifestInput,
    NotebookRef,
    SealedModel,
    build_manifest,
    model_digest,
    parse_manifest,
    read_manifest,
    write_manifest,
)
from tests.storage.factory import NOTEBOOK_SHA, fields, manifest_of

pytestmark = pytest.mark.unit

SHA_X = hashlib.sha256(b"x").hexdigest()

# A manifest exactly as nbops 0.1 wrote it: no schema_version, no inputs.
OLD = {
    "attempt": 2,
    "files": [{"path": "output.ipynb", "sha256": SHA_X, "size": 1}],
    "finished_at": "2026-11-01T00:00:00.123456+00:00",
    "image": "nbops-runner:0.1",
    "metrics": {"rows": 3},
    "mlflow_run_id": "abc",
    "nbops_version": "0.1.0",
    "notebook": {"path": "nb/up.ipynb", "sha256": NOTEBOOK_SHA},
    "parameters": {"as_of": "2026-01-01", "n": 200},
    "pipeline": "churn",
    "run_id": "20261101T000000Z-aaaaaa",
    "stage": "up",
    "status": "succeeded",
}


def sealed(tmp_path: Path) -> Path:
    attempt = tmp_path / "attempt-1"
    (attempt / "outputs" / "deep").mkdir(parents=True)
    (attempt / "output.ipynb").write_text("{}")
    (attempt / "outputs" / "b.csv").write_text("b,c\n")
    (attempt / "outputs" / "deep" / "a.txt").write_text("a")
    return attempt


def test_build_lists_every_file_sorted_with_size_and_sha256(tmp_path: Path) -> None:
    attempt = sealed(tmp_path)
    (attempt / "outputs" / "scratch.tmp").write_text("a user's file that happens to end in .tmp")
    temp_path(attempt / "outputs" / "b.csv").write_text("half of an atomic write")
    (attempt / "manifest.json").write_text("an older manifest")
    manifest = manifest_of(attempt)
    assert [f.path for f in manifest.files] == [
        "output.ipynb",
        "outputs/b.csv",
        "outputs/deep/a.txt",
        "outputs/scratch.tmp",
    ]
    b = manifest.files[1]
    assert (b.size, b.sha256) == (4, hashlib.sha256(b"b,c\n").hexdigest())
    assert (
        manifest.schema_version == 5
        and manifest.point is None
        and manifest.inputs == ()
        and manifest.models == ()
        and manifest.carried == ()
    )
    assert manifest.notebook == NotebookRef(path="nb/s.ipynb", sha256=NOTEBOOK_SHA)


def test_build_refuses_files_given_by_the_caller(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="files"):
        build_manifest(tmp_path, files=(), **fields())


def test_bytes_are_canonical_and_hashed(tmp_path: Path) -> None:
    upstream = ManifestInput(stage="up", attempt=2, manifest_sha256=SHA_X, location="s3://b/runs/p/r/up/attempt-2")
    manifest = manifest_of(sealed(tmp_path), inputs=(upstream,), metrics={"rows": 3, "auc": float("nan")})
    raw = manifest.to_bytes()
    text = raw.decode()
    data = json.loads(text)
    assert list(data) == sorted(data) and text.startswith('{\n  "attempt": 1,\n')
    assert manifest.sha256 == hashlib.sha256(raw).hexdigest()
    again = parse_manifest(raw, "here")
    assert again.to_bytes() == raw  # a fixed point: the hash survives a read and a write
    assert again.inputs == (upstream,) and again.metrics["rows"] == 3.0


def test_write_then_read(tmp_path: Path) -> None:
    attempt = sealed(tmp_path)
    manifest = manifest_of(attempt)
    path = write_manifest(attempt, manifest)
    assert path == attempt / "manifest.json" and path.read_bytes() == manifest.to_bytes()
    assert read_manifest(attempt) == manifest
    assert sorted(p.name for p in attempt.iterdir()) == ["manifest.json", "output.ipynb", "outputs"]


def test_reading_an_attempt_without_a_manifest_says_it_did_not_finish(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=f"{tmp_path}: no manifest.json; the attempt did not finish"):
        read_manifest(tmp_path)


def test_manifests_of_nbops_0_1_still_parse(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps(OLD, indent=2, sort_keys=True))
    manifest = read_manifest(tmp_path)
    assert (manifest.schema_version, manifest.inputs, manifest.attempt) == (1, (), 2)
    assert manifest.metrics == {"rows": 3.0} and manifest.parameters == OLD["parameters"]
    assert manifest.files == (ManifestFile(path="output.ipynb", size=1, sha256=SHA_X),)


def with_file(path: str) -> dict[str, Any]:
    return {**OLD, "files": [{"path": path, "sha256": SHA_X, "size": 1}]}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (with_file("../../escape"), "contains '..'"),
        (with_file("outputs/../../escape"), "contains '..'"),
        (with_file("/etc/passwd"), "is absolute"),
        (with_file(""), "empty path"),
        (with_file("."), "empty path"),
        (with_file("./outputs/a"), "not normalized"),
        (with_file("outputs//a"), "not normalized"),
        ({**OLD, "files": [OLD["files"][0], OLD["files"][0]]}, "listed more than once: output.ipynb"),
        ({**OLD, "files": [{"path": "a", "size": 1}]}, r"files\.0\.sha256: Field required"),
        ({**OLD, "files": [{"path": "a", "size": 1, "sha256": "0" * 63}]}, r"files\.0\.sha256: String should match"),
        ({**OLD, "files": "everything"}, "files: Input should be a valid tuple"),
        ({k: v for k, v in OLD.items() if k != "files"}, "files: Field required"),
        ({**OLD, "trusted": True}, "trusted: Extra inputs are not permitted"),
        ({**OLD, "schema_version": 6}, "schema version 6; this nbops reads 1 to 5"),
        ({**OLD, "attempt": 0}, "attempt: Input should be greater than or equal to 1"),
        ({**OLD, "metrics": {"rows": "many"}}, r"metrics\.rows: Input should be a valid number"),
        (["not", "a", "manifest"], r"\(top level\): Input should be a valid dictionary"),
    ],
)
def test_unsafe_or_malformed_manifests_are_refused_naming_where(body: Any, problem: str) -> None:
    with pytest.raises(InputError, match=problem) as caught:
        parse_manifest(json.dumps(body).encode(), "s3://b/x/attempt-1/manifest.json")
    assert str(caught.value).startswith("s3://b/x/attempt-1/manifest.json: not a manifest this nbops can read")


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b""])
def test_bytes_that_are_not_json_are_refused_naming_where(raw: bytes) -> None:
    with pytest.raises(InputError, match=r"^/x/manifest\.json: unreadable manifest, not JSON"):
        parse_manifest(raw, "/x/manifest.json")


def test_every_problem_is_reported_at_once() -> None:
    body = {**OLD, "files": [{"path": "/a", "sha256": SHA_X, "size": 1}, {"path": "..", "sha256": SHA_X, "size": -1}]}
    with pytest.raises(InputError) as caught:
        parse_manifest(json.dumps(body).encode(), "m")
    lines = str(caught.value).splitlines()[1:]
    assert len(lines) == 3 and all(line.startswith("  - files.") for line in lines)


def test_records_are_frozen_and_every_field_is_described(tmp_path: Path) -> None:
    manifest = manifest_of(sealed(tmp_path))
    with pytest.raises(ValidationError, match="frozen"):
        manifest.status = "failed"  # type: ignore[misc]
    models: list[type[BaseModel]] = [Manifest, ManifestFile, NotebookRef, ManifestInput]
    undescribed = [f"{m.__name__}.{n}" for m in models for n, f in m.model_fields.items() if not f.description]
    assert undescribed == []
    assert ManifestInput(stage="up", attempt=1, manifest_sha256=SHA_X).location == ""


def test_a_models_digest_is_sha256sum_of_its_files_in_path_order() -> None:
    a = ManifestFile(path="model.skops", size=3, sha256=hashlib.sha256(b"abc").hexdigest())
    b = ManifestFile(path="MLmodel", size=1, sha256=hashlib.sha256(b"x").hexdigest())
    lines = f"{b.sha256}  MLmodel\n{a.sha256}  model.skops\n"  # what `sha256sum MLmodel model.skops` prints
    assert model_digest((a, b)) == model_digest([b, a]) == hashlib.sha256(lines.encode()).hexdigest()
    changed = ManifestFile(path="model.skops", size=3, sha256=hashlib.sha256(b"abd").hexdigest())
    assert model_digest((changed, b)) != model_digest((a, b))


def test_a_sealed_model_refuses_a_file_outside_its_directory() -> None:
    good = {"path": "model.skops", "size": 1, "sha256": "0" * 64}
    with pytest.raises(ValidationError, match="would leave the attempt directory"):
        SealedModel(name="m", version="1", source="models:/m-1", files=({**good, "path": "../x"},), sha256="0" * 64)  # type: ignore[arg-type]
    model = SealedModel(name="m", version="1", source="models:/m-1", files=(ManifestFile(**good),), sha256="0" * 64)
    assert model.ref == "m/1" and model.signature_sha256 is None
