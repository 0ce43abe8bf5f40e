"""The artifact store: where stage attempts and promoted files live (DESIGN §5).

Two kinds of root, one interface. A local (or mounted) directory is used in place: the
attempt directory *is* the stage's working directory. A remote root (``s3://`` on AWS or
any S3-compatible store) is mirrored: the stage works in a local copy under the cache directory,
which is uploaded when the notebook is done, manifest last (``nbops.storage.remote``).
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.errors import InputError
from nbops.storage import layout
from nbops.storage.manifest import write_manifest

ENV_CACHE_DIR = "NBOPS_CACHE_DIR"


@dataclass(frozen=True)
class Attempt:
    """One claimed stage attempt: its number, the local directory the stage writes into,
    and where the attempt lives in the store (a path or URL, for messages and results)."""

    number: int
    workdir: Path
    location: str


class Store(ABC):
    """An artifact root. ``local_root`` is the local directory that mirrors its layout."""

    url: str
    local_root: Path

    @property
    def mlflow_location(self) -> str:
        """Artifact location of the pipeline's MLflow experiment."""
        return f"{self.url}/mlflow"

    @abstractmethod
    def claim(self, pipeline: str, run_id: str, stage: str) -> Attempt:
        """Claim the next attempt of ``stage`` exclusively (attempts never share a number)."""

    @abstractmethod
    def upload(self, attempt: Attempt, manifest: dict[str, Any] | None = None) -> None:
        """Copy the attempt into the store: exactly the files ``manifest`` lists (checked against
        their sha256), or, for an attempt that did not succeed, everything it wrote."""

    @abstractmethod
    def seal(self, attempt: Attempt, manifest: dict[str, Any]) -> None:
        """Write the manifest: the attempt's last write and the proof that it finished."""

    @abstractmethod
    def completed(self, pipeline: str, run_id: str, stage: str) -> Path | None:
        """Local directory of the newest attempt of ``stage`` that has a manifest, or None."""

    @abstractmethod
    def latest_completed(self, pipeline: str, stage: str) -> Path | None:
        """Like ``completed``, across every run (newest manifest wins)."""

    @abstractmethod
    def latest_run_key(self, pipeline: str) -> str | None:
        """The most recent run key of a pipeline, or None."""

    @abstractmethod
    def publish(self, rel: str, raw: bytes) -> bool:
        """Store content-addressed bytes at ``rel`` (named by their sha256) unless an intact copy
        is there already; True if written."""

    @abstractmethod
    def fetch(self, rel: str) -> Path:
        """Local path of the published file ``rel``; the path does not exist when the store
        has no such file."""

    def run_location(self, pipeline: str, run_id: str) -> str:
        """Where a run's attempts live, for messages."""
        return f"{self.url}/runs/{pipeline}/{layout.run_key(run_id)}"


class LocalStore(Store):
    """A local or mounted directory, used in place."""

    def __init__(self, root: Path) -> None:
        self.root = self.local_root = root
        self.url = str(root)

    @property
    def mlflow_location(self) -> str:
        return (self.root / "mlflow").as_uri()

    def claim(self, pipeline: str, run_id: str, stage: str) -> Attempt:
        number, path = layout.claim_attempt(layout.stage_dir(self.root, pipeline, run_id, stage))
        return Attempt(number, path, str(path))

    def upload(self, attempt: Attempt, manifest: dict[str, Any] | None = None) -> None:
        """Nothing to copy: the stage wrote into the store directly."""

    def seal(self, attempt: Attempt, manifest: dict[str, Any]) -> None:
        write_manifest(attempt.workdir, manifest)

    def completed(self, pipeline: str, run_id: str, stage: str) -> Path | None:
        return layout.latest_complete(layout.stage_dir(self.root, pipeline, run_id, stage))

    def latest_completed(self, pipeline: str, stage: str) -> Path | None:
        return layout.latest_complete_any_run(self.root, pipeline, stage)

    def latest_run_key(self, pipeline: str) -> str | None:
        return layout.latest_run_id(self.root, pipeline)

    def publish(self, rel: str, raw: bytes) -> bool:
        path = self.root / rel
        if path.exists() and sha256_matches_name(path.read_bytes(), rel):
            return False
        atomic_write(path, raw)
        return True

    def fetch(self, rel: str) -> Path:
        return self.root / rel


def sha256_matches_name(raw: bytes, rel: str) -> bool:
    """Whether content-addressed bytes still hash to the name they are stored under."""
    return hashlib.sha256(raw).hexdigest() == Path(rel).name.split(".")[0]


def atomic_write(path: Path, raw: bytes) -> None:
    """Write a file whole or not at all (temp file in the same directory, then rename)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(raw)
        os.replace(tmp, path)
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror}).") from exc


def cache_dir() -> Path:
    """Local mirror of remote roots: ``$NBOPS_CACHE_DIR`` or the user's cache directory."""
    value = os.environ.get(ENV_CACHE_DIR, "").strip()
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "nbops"


def open_store(pipeline_dir: Path) -> Store:
    """The store named by ``$NBOPS_ARTIFACT_ROOT``, or ``.nbops/artifacts`` beside the pipeline."""
    value = os.environ.get(layout.ENV_ARTIFACT_ROOT, "").strip()
    if layout.is_remote(value):
        from nbops.storage.remote import RemoteStore

        return RemoteStore(value, cache_dir())
    return LocalStore(layout.artifact_root(pipeline_dir))
