"""A sealed model's files and signature checked against a directory, with the real OpenSSF
model-signing library; the key variables. (Sealing through MLflow, the audit and serving run in
tests/audit/test_tamper.py and tests/test_serve.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nbops import modelseal
from nbops.errors import InputError
from nbops.storage.manifest import SealedModel, file_sha256, list_files, model_digest

pytestmark = pytest.mark.unit


def model_dir(root: Path) -> Path:
    directory = root / "model"
    directory.mkdir()
    (directory / "MLmodel").write_text("flavors: {}\n")
    (directory / "model.pkl").write_bytes(b"\x80\x04weights")
    (directory / modelseal.REGISTRY_META).write_text("model_name: m\n")  # MLflow's, left out
    return directory


def sealed_of(directory: Path, signature: Path | None = None) -> SealedModel:
    files = tuple(list_files(directory, modelseal.LEFT_OUT))
    return SealedModel(
        name="m",
        version="3",
        source="models:/m-1",
        files=files,
        sha256=model_digest(files),
        signature_sha256=file_sha256(signature) if signature is not None else None,
    )


def key_pair(root: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = root / f"{name}.pem", root / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def sign(directory: Path, private: Path) -> Path:
    from model_signing import signing

    signature = directory / modelseal.SIGNATURE
    signing.Config().use_elliptic_key_signer(private_key=private).set_hashing_config(modelseal._hashing()).sign(
        directory, signature
    )
    return signature


def test_files_as_sealed_pass_and_each_change_is_named(tmp_path: Path) -> None:
    directory = model_dir(tmp_path)
    sealed = sealed_of(directory)
    assert [f.path for f in sealed.files] == ["MLmodel", "model.pkl"]
    assert modelseal.check_files(sealed, directory) == []

    (directory / "model.pkl").write_bytes(b"\x80\x04weighTs")
    (directory / "MLmodel").unlink()
    (directory / "extra.py").write_text("planted")
    findings = {f.subject: f.detail for f in modelseal.check_files(sealed, directory)}
    assert set(findings) == {"file model.pkl", "file MLmodel", "file extra.py"}
    assert "model version m/3: model.pkl has sha256" in findings["file model.pkl"]
    assert "the model file was altered" in findings["file model.pkl"]
    assert "MLmodel is missing" in findings["file MLmodel"]
    assert "extra.py was added after the version was sealed" in findings["file extra.py"]


def test_a_signature_verifies_under_its_key_only_and_not_after_a_change(tmp_path: Path) -> None:
    directory = model_dir(tmp_path)
    private, public = key_pair(tmp_path, "ours")
    _, foreign = key_pair(tmp_path, "theirs")
    signature = sign(directory, private)
    sealed = sealed_of(directory, signature)
    assert modelseal.check_signature(sealed, directory, public) == []
    assert modelseal.check_signature(sealed, directory, None) == []  # the one sealed, not verified

    (wrong,) = modelseal.check_signature(sealed, directory, foreign)
    assert f"does not verify with NBOPS_VERIFY_KEY={foreign}" in wrong.detail and "Key mismatch" in wrong.detail

    (directory / "model.pkl").write_bytes(b"changed")
    (changed,) = modelseal.check_signature(sealed, directory, public)
    assert "the signed digest of model.pkl differs from the file's" in changed.detail


def test_a_replaced_or_missing_signature_is_named(tmp_path: Path) -> None:
    directory = model_dir(tmp_path)
    private, public = key_pair(tmp_path, "ours")
    signature = sign(directory, private)
    sealed = sealed_of(directory, signature)
    other, _ = key_pair(tmp_path, "theirs")
    sign(directory, other)  # re-signed with another key, in place
    (replaced,) = modelseal.check_signature(sealed, directory, None)
    assert "the signature was replaced" in replaced.detail and replaced.expected == sealed.signature_sha256
    signature.unlink()
    (missing,) = modelseal.check_signature(sealed, directory, public)
    assert f"its signature {modelseal.SIGNATURE} is missing" in missing.detail


def test_an_unsigned_model_has_no_signature_findings(tmp_path: Path) -> None:
    directory = model_dir(tmp_path)
    assert modelseal.check_signature(sealed_of(directory), directory, None) == []


def test_key_variables_name_files_never_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NBOPS_SIGNING_KEY", raising=False)
    assert modelseal.signing_key() is None
    private, _ = key_pair(tmp_path, "ours")
    monkeypatch.setenv("NBOPS_SIGNING_KEY", str(private))
    assert modelseal.signing_key() == private
    monkeypatch.setenv("NBOPS_VERIFY_KEY", "-----BEGIN PUBLIC KEY-----")
    with pytest.raises(InputError, match="NBOPS_VERIFY_KEY=-----BEGIN PUBLIC KEY-----: no such key file"):
        modelseal.verify_key()
