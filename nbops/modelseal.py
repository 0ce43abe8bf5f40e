"""Registered model versions under seal (DESIGN §15): every file hashed, optionally signed, verified.

A stage attempt that registered model versions seals them before its own seal:
:func:`seal_versions` downloads each version's files from MLflow's artifact store, lists them
with their sha256 (a :class:`~nbops.storage.manifest.SealedModel` in the attempt's manifest),
tags the version with the list's digest (``nbops.model_sha256``) and, when a signing key is
configured, signs the files with the OpenSSF ``model-signing`` library (its offline
elliptic-curve key signer, no network) and stores the signature beside them
(:data:`SIGNATURE`). :func:`check_version` reads the files back, from the same store, and says
what differs: ``nbops audit`` and ``nbops serve`` use it.

Keys are files, named by the environment, never written in the spec:
``$NBOPS_SIGNING_KEY`` (a PEM elliptic-curve private key, where the stage is recorded) and
``$NBOPS_VERIFY_KEY`` (its PEM public key, where models are audited or served). Create a pair
with ``openssl ecparam -name prime256v1 -genkey -noout -out signing.pem`` and
``openssl ec -in signing.pem -pubout -out verify.pem``.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.context import ENV_SIGNING_KEY, ENV_VERIFY_KEY
from nbops.errors import EvidenceError, InfraError, InputError
from nbops.storage.layout import MANIFEST
from nbops.storage.manifest import SealedModel, file_sha256, list_files, model_digest, parse_manifest
from nbops.tracking import query, record, tags
from nbops.tracking.store import quiet_downloads

if TYPE_CHECKING:
    from mlflow import MlflowClient

SIGNATURE = "nbops-model.sig"
"""The signature's name among the model's files (an OpenSSF model-signing bundle, JSON)."""
REGISTRY_META = "registered_model_meta"
"""Written by MLflow into every download of a version (its name and number): not a model file."""
LEFT_OUT = (SIGNATURE, REGISTRY_META)


def key_from_env(variable: str) -> Path | None:
    """The key file ``$variable`` names, or None when unset.

    Raises:
        InputError: the variable names no readable file.
    """
    value = os.environ.get(variable, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise InputError(
            f"{variable}={value}: no such key file; it must name a PEM key file (the path, never the key itself)."
        )
    return path


def signing_key() -> Path | None:
    """``$NBOPS_SIGNING_KEY``: the private key registered models are signed with, or None."""
    return key_from_env(ENV_SIGNING_KEY)


def verify_key() -> Path | None:
    """``$NBOPS_VERIFY_KEY``: the public key signatures are verified with, or None."""
    return key_from_env(ENV_VERIFY_KEY)


# -- sealing ---------------------------------------------------------------------------------


def seal_versions(client: MlflowClient, stage_run_id: str, key: Path | None) -> tuple[SealedModel, ...]:
    """Seal every version registered from ``stage_run_id``: hash its files, sign them with ``key``
    (when given), store the signature beside them, tag the version.

    Raises:
        InfraError: the registry or the artifact store cannot be read or written, or signing failed.
    """
    sealed = []
    for version in query.run_versions(client, stage_run_id):
        name, number = str(version.name), str(version.version)
        with fetched(client, name, number) as directory:
            files = tuple(list_files(directory, LEFT_OUT))
            signature = _sign(client, str(version.source), directory, key) if key is not None else None
        model = SealedModel(
            name=name,
            version=number,
            source=str(version.source),
            files=files,
            sha256=model_digest(files),
            signature_sha256=signature,
        )
        for tag, value in ((tags.MODEL_SHA256, model.sha256), (tags.MODEL_SIGNED, tags.flag(signature is not None))):
            record.call(client.set_model_version_tag, name, number, tag, value, what="tag a sealed model version")
        sealed.append(model)
    return tuple(sealed)


@contextmanager
def fetched(client: MlflowClient, name: str, version: str) -> Iterator[Path]:
    """The files of model version ``name/version``, downloaded from MLflow's artifact store into a
    temporary directory (removed on exit).

    Raises:
        InfraError: the store cannot be read.
    """
    with tempfile.TemporaryDirectory(prefix="nbops-model-") as tmp:
        yield download(client, name, version, Path(tmp))


def download(client: MlflowClient, name: str, version: str, into: Path) -> Path:
    """Download the files of model version ``name/version`` below ``into``; the model's directory.

    Raises:
        EvidenceError: the store answers and the files are not there.
        InfraError: the registry or the artifact store cannot be read.
    """
    import mlflow

    location = ""
    try:
        location = client.get_model_version_download_uri(name, version)
        with quiet_downloads():
            found = mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=str(into / "model"), tracking_uri=client.tracking_uri
            )
    except Exception as exc:
        if location and _gone(location, client.tracking_uri):
            raise EvidenceError(
                f"model version {name}/{version}: its files are gone from {location}; there is nothing to vouch for."
            ) from exc
        raise InfraError(f"MLflow: cannot read the files of model version {name}/{version}: {exc}") from exc
    return Path(found)


def _gone(location: str, uri: str) -> bool:
    """Whether the store answers and has nothing at ``location`` (rather than failing to answer)."""
    import mlflow

    try:
        return not mlflow.artifacts.list_artifacts(artifact_uri=location, tracking_uri=uri)
    except Exception:  # the store did not answer: an infrastructure failure, not missing evidence
        return False


def _hashing() -> Any:
    """How files are hashed for a signature: every file but :data:`LEFT_OUT` (the library's default
    of leaving out git's files is off: a model directory has none, and a planted one must count)."""
    from model_signing import hashing

    config: Any = hashing.Config
    return config().set_ignored_paths(paths=list(LEFT_OUT), ignore_git_paths=False)


def _sign(client: MlflowClient, source: str, directory: Path, key: Path) -> str:
    """Sign ``directory`` with ``key``, store the signature beside the model at ``source``; its sha256."""
    from model_signing import signing

    signature = directory.parent / SIGNATURE
    config: Any = signing.Config
    try:
        config().use_elliptic_key_signer(private_key=key).set_hashing_config(_hashing()).sign(directory, signature)
    except Exception as exc:
        raise InfraError(f"{ENV_SIGNING_KEY}={key}: cannot sign the model with it: {exc}") from exc
    if source.startswith("models:/m-"):
        model_id = source.removeprefix("models:/").split("/", 1)[0]
        record.call(client.log_model_artifact, model_id, str(signature), what="store the model's signature")
    elif source.startswith("runs:/"):
        run_id, _, path = source.removeprefix("runs:/").partition("/")
        record.call(client.log_artifact, run_id, str(signature), path or None, what="store the model's signature")
    else:
        raise InfraError(f"cannot store a signature beside model files at {source} (not a models:/ or runs:/ URI)")
    return file_sha256(signature)


# -- vouching for a version before it is served ------------------------------------------------


def vouch(client: MlflowClient, name: str, version: str, public_key: Path | None, into: Path) -> Path:
    """Download model version ``name/version`` below ``into`` and check it against its seal (the
    stage run's manifest, which the version's digest tag must agree with) and, with ``public_key``,
    its signature; the directory of the checked files.

    Raises:
        EvidenceError: the version was not sealed, or its files or signature differ from the seal
            (exit 4, naming the version and the file).
        InfraError: the registry or the artifact store cannot be read.
    """
    sealed = sealed_record(client, name, version)
    directory = download(client, name, version, into)
    findings = check_files(sealed, directory) + check_signature(sealed, directory, public_key)
    if public_key is not None and sealed.signature_sha256 is None:
        detail = f"model version {sealed.ref} was not signed, and {ENV_VERIFY_KEY} asks for a verified signature"
        findings.append(Finding("signature", detail))
    if findings:
        prefix = f"model version {sealed.ref}: "
        why = "; ".join(f.detail.removeprefix(prefix).rstrip(".") for f in findings)
        raise EvidenceError(f"model version {sealed.ref} cannot be vouched for: {why}. Nothing was served or copied.")
    return directory


def sealed_record(client: MlflowClient, name: str, version: str) -> SealedModel:
    """The seal of ``name/version``: the entry of its stage run's ``manifest.json``.

    Raises:
        EvidenceError: no stage run, no manifest, no entry, or a digest tag that disagrees.
        InfraError: the tracking store cannot be read.
    """
    found = query.version(client, name, version)
    version_tags = dict(found.tags)
    run_id = version_tags.get(tags.STAGE_RUN) or str(found.run_id or "")
    where = f"runs:/{run_id}/{MANIFEST}"
    if not run_id:
        raise EvidenceError(f"model version {name}/{version} names no stage run: it was not registered by a pipeline.")
    with tempfile.TemporaryDirectory(prefix="nbops-seal-") as tmp, quiet_downloads():
        try:
            raw = Path(client.download_artifacts(run_id, MANIFEST, tmp)).read_bytes()
        except Exception as exc:  # MLflow raises its own exception for a missing artifact
            raise EvidenceError(f"model version {name}/{version}: {where} cannot be read ({exc}); no seal.") from exc
    try:
        manifest = parse_manifest(raw, where)
    except InputError as exc:
        raise EvidenceError(exc.message) from None
    sealed = next((m for m in manifest.models if (m.name, m.version) == (name, version)), None)
    if sealed is None:
        raise EvidenceError(f"model version {name}/{version} is not among the models {where} seals.")
    tagged = version_tags.get(tags.MODEL_SHA256, "")
    if tagged != sealed.sha256:
        raise EvidenceError(
            f"model version {name}/{version} is tagged {tags.MODEL_SHA256}={tagged or '(none)'}, "
            f"but {where} seals {sealed.sha256}."
        )
    return sealed


# -- checking --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """What differs between a sealed model and the files its version has now."""

    subject: str
    """``file model.skops``, ``signature``, ``files``."""
    detail: str
    """One sentence naming the version and the file, with expected and actual values."""
    expected: str = ""
    actual: str = ""


def check_files(sealed: SealedModel, directory: Path) -> list[Finding]:
    """Each sealed file against ``directory`` (the version's files as downloaded now)."""
    found = {f.path: f for f in list_files(directory, LEFT_OUT)}
    findings = []
    for listed in sealed.files:
        now = found.pop(listed.path, None)
        if now is None:
            detail = f"model version {sealed.ref}: {listed.path} is missing (sealed with sha256 {listed.sha256})"
            findings.append(Finding(f"file {listed.path}", detail, expected=listed.sha256))
        elif now.sha256 != listed.sha256:
            detail = (
                f"model version {sealed.ref}: {listed.path} has sha256 {now.sha256}, sealed as {listed.sha256}: "
                "the model file was altered"
            )
            findings.append(Finding(f"file {listed.path}", detail, expected=listed.sha256, actual=now.sha256))
    for path, extra in sorted(found.items()):
        detail = f"model version {sealed.ref}: {path} was added after the version was sealed (sha256 {extra.sha256})"
        findings.append(Finding(f"file {path}", detail, actual=extra.sha256))
    return findings


def check_signature(sealed: SealedModel, directory: Path, public_key: Path | None) -> list[Finding]:
    """The signature stored beside the files: the one sealed, and valid for ``public_key`` when given."""
    if sealed.signature_sha256 is None:
        return []
    signature = directory / SIGNATURE
    if not signature.is_file():
        detail = f"model version {sealed.ref}: its signature {SIGNATURE} is missing (sealed with sha256 "
        return [Finding("signature", detail + f"{sealed.signature_sha256})", expected=sealed.signature_sha256)]
    actual = file_sha256(signature)
    if actual != sealed.signature_sha256:
        detail = (
            f"model version {sealed.ref}: {SIGNATURE} has sha256 {actual}, sealed as {sealed.signature_sha256}: "
            "the signature was replaced"
        )
        return [Finding("signature", detail, expected=sealed.signature_sha256, actual=actual)]
    if public_key is None:
        return []
    problem = verify_signature(directory, signature, public_key)
    if problem:
        return [Finding("signature", f"model version {sealed.ref}: {problem}")]
    return []


def verify_signature(directory: Path, signature: Path, public_key: Path) -> str:
    """``""`` when ``signature`` is valid for ``directory`` under ``public_key``, else why not."""
    from model_signing import verifying

    config: Any = verifying.Config
    try:
        config().use_elliptic_key_verifier(public_key=public_key).set_hashing_config(_hashing()).verify(
            directory, signature
        )
    except Exception as exc:  # the library raises ValueError, and crypto errors for a foreign key
        return f"the signature {SIGNATURE} does not verify with {ENV_VERIFY_KEY}={public_key}: {_reason(exc)}"
    return ""


def _reason(exc: Exception) -> str:
    """The library's reason, with the files it names instead of its digests' byte strings."""
    text = str(exc) or type(exc).__name__
    changed = re.findall(r"Hash mismatch for \\?'([^'\\]+)\\?'", text)
    if changed:
        return f"the signed digest of {', '.join(changed)} differs from the file's"
    return text.strip()


__all__ = [
    "LEFT_OUT",
    "SIGNATURE",
    "Finding",
    "check_files",
    "check_signature",
    "download",
    "fetched",
    "seal_versions",
    "sealed_record",
    "signing_key",
    "verify_key",
    "verify_signature",
    "vouch",
]
