"""The attempt's start record, ``attempt.json``: what an attempt ran with, written when it is claimed.

The manifest is written only by an attempt that succeeded; a failed, killed or still running
attempt has this record instead, so that ``nbops logs``, ``nbops debug`` and ``nbops diff`` can
tell what any attempt ran with: each parameter with where its value came from, the upstream
attempts it consumed, the notebook, the code and the environment. On a remote store it is put
beside the attempt's claim at once, before the notebook runs.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nbops.errors import InfraError, format_problems
from nbops.storage.manifest import CarriedFile, ManifestInput, NotebookRef, PointRef

START = "attempt.json"
START_SCHEMA_VERSION = 1

Origin = Literal["notebook", "spec", "run", "point"]
"""Where a parameter's value came from: the notebook's ``parameters`` cell, the pipeline spec, the
run (``nbops run -p``, the DAG run's conf, a retraining override), or the point of a sweep."""


class StartParameter(BaseModel):
    """One parameter as the attempt ran with it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: Any = Field(description="Its value (secrets masked).")
    origin: Origin = Field(description="Where the value came from.")


class AttemptStart(BaseModel):
    """What one stage attempt ran with, as it was claimed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = Field(START_SCHEMA_VERSION, description="Format version of this record.")
    pipeline: str
    run_id: str
    stage: str
    attempt: int = Field(ge=1)
    point: PointRef | None = Field(None, description="The point of a swept stage this attempt runs.")
    notebook: NotebookRef
    parameters: dict[str, StartParameter] = Field(description="Effective parameters and their origins.")
    inputs: tuple[ManifestInput, ...] = Field((), description="Upstream attempts it consumes, in the order read.")
    carried: tuple[CarriedFile, ...] = Field((), description="The helper files it carries, by content.")
    git_commit: str | None = None
    git_dirty: bool | None = None
    image: str | None = None
    environment: str | None = Field(None, description="'python 3.11.9 at /prefix'.")
    packages: tuple[str, ...] = Field((), description="Sorted 'name==version' lines of the installed packages.")
    started_at: str = Field(description="When the attempt was claimed, ISO 8601 with offset.")
    reuses: str | None = Field(None, description="For an attempt that reuses another: where that one lives.")

    def to_bytes(self) -> bytes:
        """Canonical JSON (sorted keys, indent 2)."""
        return (json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode("utf-8")

    @property
    def values(self) -> dict[str, Any]:
        """The parameters' values alone."""
        return {name: p.value for name, p in self.parameters.items()}


def parse_start(raw: bytes, where: str) -> AttemptStart:
    """Parse ``attempt.json`` bytes read from ``where``.

    Raises:
        InfraError: the record is not valid JSON or not an attempt record (a damaged store).
    """
    try:
        return AttemptStart.model_validate_json(raw)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors()[:10]]
        raise InfraError(format_problems(f"{where}: not a readable attempt record", problems)) from exc


def origins(
    names: list[str], spec: dict[str, Any], given: dict[str, Any], point: dict[str, Any] | None
) -> dict[str, Origin]:
    """Where each of ``names`` got its value: a point's parameter over the run's, over the spec's,
    over the notebook's default."""
    found: dict[str, Origin] = {}
    for name in names:
        if point and name in point:
            found[name] = "point"
        elif name in given:
            found[name] = "run"
        elif name in spec:
            found[name] = "spec"
        else:
            found[name] = "notebook"
    return found
