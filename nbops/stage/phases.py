"""The records a stage attempt's phases pass on (DESIGN §10).

    Prepared -> Located -> Claimed -> Executed -> Archived -> Recorded -> Sealed

Each phase of :mod:`nbops.stage.lifecycle` takes the previous record and returns its own, so
the attempt's data can be followed as values. A failure is the record's ``outcome`` (a
:class:`~nbops.status.StageStatus` that did not succeed), never a field left empty; an
attempt that failed carries no manifest, and only a success is sealed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.sweep import unit

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from nbops.context import GitState
    from nbops.notebook.outcome import Outcome
    from nbops.notebook.redact import Redactor
    from nbops.spec import Pipeline, ResolvedStage
    from nbops.stage.carried import Carried
    from nbops.stage.contract import StageContract
    from nbops.stage.recorder import Tracker
    from nbops.stage.result import StageRequest
    from nbops.stage.slots import CacheHit
    from nbops.storage import Attempt, Store
    from nbops.storage.manifest import Manifest, ManifestInput
    from nbops.sweep import Point


@dataclass(frozen=True)
class Prepared:
    """The stage checked and ready: its pipeline, contract, parameterized notebook and stores."""

    request: StageRequest
    pipeline: Pipeline
    git: GitState
    run_date: str
    contract: StageContract
    notebook: NotebookNode | None
    """The notebook with its parameters injected; None when only a reuse is considered."""
    effective: Mapping[str, Any]
    """What the notebook runs with: its defaults under the injected values, secrets masked."""
    store: Store
    uri: str
    """The tracking URI the record goes to."""
    redactor: Redactor
    carried: tuple[Carried, ...] = ()
    """The helper files the notebook runs with, read before the kernel starts (none for a reuse)."""
    signing_key: Path | None = None
    """The key registered models are signed with (``$NBOPS_SIGNING_KEY``), or None."""
    point: Point | None = None
    """Of a swept stage: the point this attempt runs (its parameters are in ``contract.params``)."""

    @property
    def stage(self) -> ResolvedStage:
        """The stage as the spec resolves it."""
        return self.contract.stage

    @property
    def unit(self) -> str:
        """Where the attempt lives under its run: the stage, or ``stage/point-<id>`` for a point."""
        return unit(self.stage.name, self.point.id if self.point is not None else None)

    @property
    def label(self) -> str:
        """How messages name the attempt's stage: ``train``, or ``train[3] C=10.0`` for a point."""
        return self.point.label(self.stage.name) if self.point is not None else self.stage.name


@dataclass(frozen=True)
class Located:
    """The upstream attempts the stage consumes, and the key a reuse must match."""

    prepared: Prepared
    inputs: Mapping[str, Path]
    """``nbops.input_dir(stage)`` of each upstream stage."""
    consumed: tuple[ManifestInput, ...]
    """The attempts named in the manifest's ``inputs`` (for a reused one: the attempt that ran)."""
    cache_key: str | None


@dataclass(frozen=True)
class Claimed:
    """An attempt number is ours, its record is being set up, and what it will do is decided."""

    located: Located
    attempt: Attempt
    kernel_vars: Mapping[str, str]
    """The stage's variables the kernel gets before any cell."""
    tracker: Tracker
    hit: CacheHit | None = None
    """The completed attempt this one stands for instead of running (``cached``)."""

    @property
    def prepared(self) -> Prepared:
        """The attempt's first record."""
        return self.located.prepared


@dataclass(frozen=True)
class Executed:
    """How the notebook ran (or that it was reused)."""

    claimed: Claimed
    outcome: Outcome
    notebook: NotebookNode | None
    """The notebook as executed (None when it never started or was reused)."""


@dataclass(frozen=True)
class Archived:
    """The executed notebook archived; a success's files listed in its manifest and in the store."""

    claimed: Claimed
    outcome: Outcome
    mlflow_run_id: str | None
    manifest: Manifest | None
    """Listed for sealing: present exactly when ``outcome`` succeeded."""


@dataclass(frozen=True)
class Recorded(Archived):
    """Metrics, tags, notebook and manifest in the MLflow stage run; a failure's record closed."""


@dataclass(frozen=True)
class Sealed(Archived):
    """The attempt's last record: a success's manifest stored and its MLflow run closed."""

    @property
    def succeeded(self) -> bool:
        """Whether the attempt counts as done."""
        return self.outcome.status.succeeded
