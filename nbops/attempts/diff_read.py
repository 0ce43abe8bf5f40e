"""What ``nbops diff`` reads of one run's attempt of a unit: its records, and those of the attempt
that ran its notebook (itself, or for a ``cached`` attempt the attempt it reused)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbops.attempts import find
from nbops.attempts.diff_sections import UNKNOWN, Param, Upstream
from nbops.errors import InputError
from nbops.storage import layout
from nbops.storage.manifest import ManifestInput, model_digest

if TYPE_CHECKING:
    from nbops.spec import Pipeline
    from nbops.storage import Store
    from nbops.storage.manifest import Manifest
    from nbops.storage.start import AttemptStart

NO_RECORD = "unsealed"
"""The status of an attempt with neither a manifest nor an executed notebook saying how it ended."""
OUTPUTS = "outputs/"


@dataclass(frozen=True)
class Side:
    """One run's attempt of a unit, as the diff shows it."""

    run: str
    attempt: int
    status: str
    """Its own status (``cached`` for a reuse)."""
    ran_run: str
    ran_attempt: int
    """The attempt that ran the notebook: itself, or the one a cached attempt reused."""
    location: str

    @property
    def cached(self) -> bool:
        """Whether it reused another attempt instead of running."""
        return (self.ran_run, self.ran_attempt) != (self.run, self.attempt)


@dataclass(frozen=True)
class Records:
    """One run's attempt of a unit, read: the newest attempt and the attempt that ran."""

    ref: find.AttemptRef
    ran: find.AttemptRef
    start: AttemptStart | None
    manifest: Manifest | None
    ran_manifest: Manifest | None
    notebook: bytes | None
    """The executed notebook of the attempt that ran."""

    @property
    def side(self) -> Side:
        return Side(
            run=self.ref.run_key,
            attempt=self.ref.number,
            status=self.manifest.status if self.manifest else _notebook_status(self.notebook, self.ref is self.ran),
            ran_run=self.ran.run_key,
            ran_attempt=self.ran.number,
            location=self.ref.location,
        )

    @property
    def status(self) -> str:
        """The status of the attempt that ran (a reuse counts as what it reused)."""
        return self.ran_manifest.status if self.ran_manifest else _notebook_status(self.notebook, True)

    def parameters(self, known_origins: bool) -> dict[str, Param]:
        """Its parameters with their origins (``unknown`` without start record or unless ``known_origins``)."""
        if self.start is not None:
            return {n: Param(p.value, p.origin if known_origins else UNKNOWN) for n, p in self.start.parameters.items()}
        if self.manifest is not None:
            return {n: Param(v, UNKNOWN) for n, v in self.manifest.parameters.items()}
        return {}

    @property
    def inputs(self) -> tuple[ManifestInput, ...]:
        record = self.start or self.manifest
        return record.inputs if record is not None else ()

    @property
    def notebook_sha256(self) -> str | None:
        record = self.start or self.manifest or self.ran_manifest
        return record.notebook.sha256 if record is not None else None

    @property
    def carried(self) -> dict[str, str]:
        record = self.start or self.manifest
        return {f.path: f.sha256 for f in record.carried} if record is not None else {}

    def commit(self) -> dict[str, Any]:
        record = self.start or self.manifest
        return {"git_commit": record.git_commit, "git_dirty": record.git_dirty} if record is not None else {}


def read(store: Store, pipeline: Pipeline, key: str, unit: str) -> Records | None:
    """The newest attempt of ``unit`` in run ``key`` and the attempt that ran it; None: none started.

    Raises:
        InputError: a damaged manifest, or the reused attempt's run is gone.
        InfraError: the store cannot be read, or a start record is damaged.
    """
    if not store.attempt_numbers(pipeline.name, key, unit):
        return None
    ref = find.attempt(store, pipeline, key, unit)
    manifest = ref.manifest()
    ran = find.that_ran(ref, manifest)
    ran_manifest = manifest if ran is ref else ran.manifest()
    return Records(ref, ran, ref.start(), manifest, ran_manifest, ran.notebook())


def upstream(store: Store, consumed: ManifestInput, cache: dict[str, Upstream]) -> Upstream:
    """An upstream attempt a stage consumed, with the digest of its ``outputs/`` files (read once per
    location through ``cache``)."""
    if consumed.location in cache:
        return cache[consumed.location]
    rel = consumed.location.removeprefix(store.url.rstrip("/") + "/")
    parts = rel.split("/")
    run = parts[2] if consumed.location != rel and len(parts) > 2 and parts[0] == "runs" else ""
    data = None
    if run:
        raw = store.read_bytes(f"{rel}/{layout.MANIFEST}")
        data = _data_digest(raw) if raw is not None else None
    found = Upstream(run=run, attempt=consumed.attempt, manifest_sha256=consumed.manifest_sha256, data_sha256=data)
    cache[consumed.location] = found
    return found


def _data_digest(raw: bytes) -> str | None:
    """The digest of a manifest's ``outputs/`` files; None when it does not parse."""
    from nbops.storage.manifest import parse_manifest

    try:
        manifest = parse_manifest(raw, "upstream manifest")
    except InputError:
        return None
    return model_digest([f for f in manifest.files if f.path.startswith(OUTPUTS)])


def _notebook_status(raw: bytes | None, own: bool) -> str:
    """The status an archived notebook records (``metadata.nbops.status``), or :data:`NO_RECORD`."""
    if raw is None or not own:
        return NO_RECORD
    try:
        status = json.loads(raw.decode("utf-8")).get("metadata", {}).get("nbops", {}).get("status")
    except (UnicodeDecodeError, ValueError, AttributeError):
        return NO_RECORD
    return str(status) if status else NO_RECORD
