"""What a walk finds: the records of MLflow runs, source copies and stage attempts behind a
model version or a pipeline run, as :mod:`nbops.audit.walk` gathers them and
:mod:`nbops.audit.verify` and :mod:`nbops.audit.report` read them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from nbops.provenance import Sources
from nbops.status import RunStatus, StageStatus
from nbops.storage.manifest import Manifest, SealedModel
from nbops.tracking import tags

Role = Literal["model", "stage", "upstream", "reused"]
"""``reused``: the completed attempt a ``cached`` attempt stands for (incremental runs)."""


@dataclass(frozen=True)
class DatasetRecord:
    """One dataset input of an MLflow run."""

    name: str
    digest: str
    profile: str
    source: str
    context: str


@dataclass(frozen=True)
class RunRecord:
    """What an MLflow run says."""

    run_id: str
    experiment_id: str
    status: str
    start_time: int | None
    end_time: int | None
    tags: Mapping[str, str]
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    datasets: tuple[DatasetRecord, ...]

    def tag(self, name: str) -> str:
        """A tag's value, ``""`` when unset."""
        return self.tags.get(name, "")


@dataclass(frozen=True)
class Copy:
    """A content-addressed source copy in the store."""

    rel: str
    location: str
    raw: bytes | None
    recorded_sha256: str
    """The sha256 the records give the file (the sources index, else a tag or the name)."""
    indexed: bool
    """Whether ``pipeline/sources.json`` named this copy (else its place was derived from a hash)."""


@dataclass(frozen=True)
class ModelEvidence:
    """A sealed model version and its files as downloaded now from MLflow's artifact store."""

    sealed: SealedModel
    directory: Path | None
    """Where its files were downloaded (inside the walk's temporary directory); None: unreadable."""
    tags: Mapping[str, str]
    error: str = ""
    """Why the files could not be read."""


@dataclass(frozen=True)
class Consumer:
    """A downstream attempt that recorded this attempt's manifest hash."""

    key: str
    manifest_sha256: str
    location: str


@dataclass
class AttemptRecord:
    """One stage attempt: its MLflow stage run and its files in the store."""

    stage: str
    attempt: int | None
    role: Role
    rel: str = ""
    location: str = ""
    manifest_location: str = ""
    run: RunRecord | None = None
    run_note: str = ""
    """Why ``run`` is None, when it should exist."""
    stored_manifest: bytes | None = None
    manifest: Manifest | None = None
    manifest_error: str = ""
    recorded_manifest: bytes | None = None
    """The stage run's ``manifest.json`` artifact."""
    consumers: list[Consumer] = field(default_factory=list)
    expects_manifest: bool = True
    """False for a stage shown without a successful attempt (failed, running, not run)."""
    run_key: str = ""
    """The pipeline run the attempt belongs to, when it is not the audited one (a reused attempt)."""
    recorded_files: dict[str, bytes | None] = field(default_factory=dict)
    """The stage run's copies of the attempt's files the MLflow UI shows (``output.html``, ...)."""
    carried: list[Copy] = field(default_factory=list)
    """The store's copies of the helper files the manifest lists."""
    models: list[ModelEvidence] = field(default_factory=list)
    """The model versions the manifest seals, as the registry has them now."""

    @property
    def spec_stage(self) -> str:
        """The stage of the spec (``stage`` less a swept stage's ``/point-<id>``)."""
        return self.stage.partition("/")[0]

    @property
    def key(self) -> str:
        """``stage#attempt`` (``stage#attempt@run`` in another run), or the stage alone when it never ran."""
        if self.attempt is None:
            return self.stage
        return f"{self.stage}#{self.attempt}" + (f"@{self.run_key}" if self.run_key else "")

    @property
    def status(self) -> str:
        """A :class:`StageStatus` value, ``not run``, or what MLflow says."""
        if self.run is not None and self.run.tag(tags.STATUS):
            return self.run.tag(tags.STATUS)
        if self.manifest is not None:
            return self.manifest.status
        if self.run is not None:
            named = {RunStatus.FINISHED.value: StageStatus.SUCCEEDED.value, RunStatus.RUNNING.value: "running"}
            return named.get(self.run.status, self.run.status.lower())
        return "not run" if self.attempt is None else "unknown"


class ModelInfo(BaseModel):
    """A registered model version, as the registry records it (the report's ``subject.model``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    aliases: tuple[str, ...]
    registered_at: str | None
    source: str
    source_run: str
    """The version's MLflow run id."""
    tags: dict[str, str]


@dataclass(frozen=True)
class Gap:
    """A record the walk needed and did not find: reported as a failed check."""

    subject: str
    detail: str
    location: str = ""


@dataclass
class Lineage:
    """Everything the walk found."""

    subject: Literal["model", "run"]
    ref: str
    store_url: str
    tracking_uri: str
    model: ModelInfo | None = None
    pipeline: str = ""
    run_id: str = ""
    parent: RunRecord | None = None
    sources: Sources | None = None
    sources_note: str = ""
    spec: Copy | None = None
    spec_data: dict[str, Any] = field(default_factory=dict)
    lock: Copy | None = None
    notebooks: dict[str, Copy] = field(default_factory=dict)
    attempts: list[AttemptRecord] = field(default_factory=list)
    """Upstream first: every attempt comes after the attempts it consumed."""
    gaps: list[Gap] = field(default_factory=list)

    def stage_spec(self, stage: str) -> Mapping[str, Any]:
        """The spec copy's ``stages.<stage>`` mapping (empty when unknown)."""
        stages = self.spec_data.get("stages")
        entry = stages.get(stage) if isinstance(stages, dict) else None
        return entry if isinstance(entry, dict) else {}


def iso(ms: int | None) -> str | None:
    """Milliseconds since the epoch (as MLflow records times) as ISO 8601 (UTC), None when unset."""
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def dataset_profile(dataset: DatasetRecord) -> dict[str, Any]:
    """A dataset input's profile as a mapping (empty when it is not a JSON object)."""
    try:
        data = json.loads(dataset.profile)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


__all__ = [
    "AttemptRecord",
    "Consumer",
    "Copy",
    "DatasetRecord",
    "Gap",
    "Lineage",
    "ModelEvidence",
    "ModelInfo",
    "Role",
    "RunRecord",
    "dataset_profile",
    "iso",
]
