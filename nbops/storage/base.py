"""The artifact store's interface (DESIGN §5): what a stage attempt and a promotion need.

Two kinds of root implement it. A local (or mounted) directory is used in place: the
attempt directory *is* the stage's working directory (``nbops.storage.local``). A remote
root (``s3://`` on AWS or any S3-compatible store) is mirrored: the stage works in a local
copy under the cache directory, uploaded when the notebook is done, manifest last
(``nbops.storage.remote``). Neither knows the other; ``nbops.storage.open_store`` picks one.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nbops.cachedir import ENV_CACHE_DIR as ENV_CACHE_DIR
from nbops.cachedir import cache_dir as cache_dir
from nbops.storage import layout

if TYPE_CHECKING:
    from nbops.storage.manifest import Manifest


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
    def upload(self, attempt: Attempt, manifest: Manifest | None = None) -> None:
        """Copy the attempt into the store: exactly the files ``manifest`` lists (checked against
        their sha256), or, for an attempt that did not succeed, everything it wrote."""

    def begin(self, attempt: Attempt, start: bytes) -> None:
        """Write the attempt's start record (``attempt.json``, :mod:`nbops.storage.start`) into its
        directory; a remote store also puts it in the store at once.

        Raises:
            InfraError: it could not be written.
        """
        from nbops.storage.atomic import write_atomic
        from nbops.storage.start import START

        write_atomic(attempt.workdir / START, start)

    @abstractmethod
    def checkpoint(self, attempt: Attempt, name: str) -> None:
        """Copy the attempt's file ``name`` as it is now into the store while the attempt runs (the
        partial notebook); nothing to do where the attempt directory is the store.

        Raises:
            InfraError: the store did not take it.
        """

    @abstractmethod
    def attempt_numbers(self, pipeline: str, run_id: str, stage: str) -> list[int]:
        """The numbers of every claimed attempt of ``stage`` (a unit: ``stage/point-<id>`` for a
        point) in the run, sealed or not, lowest first."""

    @abstractmethod
    def seal(self, attempt: Attempt, manifest: Manifest) -> None:
        """Write the manifest: the attempt's last write and the proof that it finished."""

    @abstractmethod
    def completed(self, pipeline: str, run_id: str, stage: str) -> Path | None:
        """Local directory of the newest attempt of ``stage`` that has a manifest, or None.

        The directory holds the files the manifest lists and, last, ``manifest.json`` itself.
        """

    @abstractmethod
    def attempt_dir(self, pipeline: str, run_id: str, stage: str, number: int) -> Path | None:
        """Local directory of attempt ``number`` of ``stage`` when it has a manifest, else None
        (as :meth:`completed`, for one given attempt)."""

    @abstractmethod
    def latest_completed(self, pipeline: str, stage: str) -> Path | None:
        """Like ``completed``, across every run: the manifest that finished last wins."""

    @abstractmethod
    def latest_run_key(self, pipeline: str) -> str | None:
        """The most recent run key of a pipeline, or None."""

    @abstractmethod
    def publish(self, rel: str, raw: bytes) -> bool:
        """Store content-addressed bytes at ``rel`` (named by their sha256) unless an intact copy
        is there already; True if written."""

    @abstractmethod
    def put(self, rel: str, raw: bytes) -> None:
        """Write the small mutable file ``rel`` whole (an index entry), replacing what was there.

        Raises:
            InfraError: the store did not take it.
        """

    @abstractmethod
    def fetch(self, rel: str) -> Path:
        """Local path of the published file ``rel``; the path does not exist when the store
        has no such file."""

    @abstractmethod
    def read_bytes(self, rel: str) -> bytes | None:
        """The bytes stored at ``rel`` (a '/'-separated path under the root), or None when absent.

        Raises:
            InfraError: the store cannot be read.
        """

    @abstractmethod
    def digest(self, rel: str) -> str | None:
        """sha256 of the bytes stored at ``rel``, streamed; None when absent.

        Raises:
            InfraError: the store cannot be read.
        """

    def location(self, rel: str) -> str:
        """``rel`` as a path or URL in this store, for messages."""
        return f"{self.url}/{rel}"

    def run_location(self, pipeline: str, run_id: str) -> str:
        """Where a run's attempts live, for messages."""
        return f"{self.url}/runs/{pipeline}/{layout.run_key(run_id)}"


def sha256_matches_name(raw: bytes, rel: str) -> bool:
    """Whether content-addressed bytes still hash to the name they are stored under."""
    return hashlib.sha256(raw).hexdigest() == Path(rel).name.split(".")[0]
