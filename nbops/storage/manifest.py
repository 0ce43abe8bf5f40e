"""The stage attempt manifest: the last file written, the only proof an attempt finished.

A typed record (DESIGN §5): the attempt's files with sha256, its status, parameters,
metrics, notebook hash, and ``inputs``, the upstream attempts it consumed. Its bytes are
canonical JSON, so ``Manifest.sha256`` is the hash of ``manifest.json`` as nbops writes it
and can stand for the attempt in a downstream manifest or an MLflow dataset digest.

Manifests of nbops 0.1 (no ``schema_version``, no ``inputs``) parse as version 1 with no
inputs; their stored bytes then differ from ``to_bytes()``, so hash the stored file when
the bytes themselves are being verified. Version 2 adds what the code and environment were
(``lock_sha256``, ``git_commit``, ``git_dirty``, ``environment``, ``packages_sha256``);
version 1 manifests read with those unset. Version 3 adds incremental runs (DESIGN §13): the
``cache_key`` the attempt ran under and, for an attempt that reused another instead of
running (status ``cached``), ``reused``, the attempt it stands for. Version 4 adds the trust
record (DESIGN §15): ``models``, every model version the attempt registered with each of its
files' sha256 (and its signature's), and ``carried``, the helper files the stage ran with.
Version 5 adds sweeps (DESIGN §17): ``point``, the parameter set of a swept stage's attempt, on
the manifest and on each input that came from one; it is left out of the bytes when absent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from nbops.errors import InputError, format_problems
from nbops.storage.atomic import is_temp, write_atomic
from nbops.storage.layout import MANIFEST
from nbops.sweep import unit

SCHEMA_VERSION = 5
SHA256_PATTERN = r"^[0-9a-f]{64}$"
_CHUNK = 1 << 20
_MAX_PROBLEMS = 10


class ManifestFile(BaseModel):
    """One file of the attempt, as it was when the attempt finished."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(description="Path relative to the attempt directory, '/'-separated and normalized.")
    size: int = Field(ge=0, description="Size in bytes.")
    sha256: str = Field(pattern=SHA256_PATTERN, description="sha256 of the file's bytes (lowercase hex).")

    @field_validator("path")
    @classmethod
    def _inside_the_attempt(cls, value: str) -> str:
        """Refuse any path that could name something outside the attempt directory."""
        posix = PurePosixPath(value)
        if not value or not posix.parts or posix.parts == (".",):
            raise ValueError("empty path")
        if "\x00" in value:
            raise ValueError(f"{value!r} contains a NUL byte")
        if posix.is_absolute():
            raise ValueError(f"{value!r} is absolute; paths are relative to the attempt directory")
        if ".." in posix.parts:
            raise ValueError(f"{value!r} contains '..' and would leave the attempt directory")
        if posix.as_posix() != value:
            raise ValueError(f"{value!r} is not normalized (expected {posix.as_posix()!r})")
        return value


class NotebookRef(BaseModel):
    """The notebook the attempt ran."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(description="Notebook path as written in the pipeline spec.")
    sha256: str = Field(pattern=SHA256_PATTERN, description="sha256 of the notebook's bytes before injection.")


class PointRef(BaseModel):
    """The point of a swept stage an attempt ran (DESIGN §17)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(ge=0, description="Its place in the sweep when it ran.")
    id: str = Field(pattern=r"^[0-9a-f]{12}$", description="Digest of its parameters: its directory is point-<id>.")
    parameters: dict[str, Any] = Field(description="The parameters the point sets.")


class ManifestInput(BaseModel):
    """An upstream attempt whose outputs this attempt consumed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: str = Field(description="The upstream stage.")
    attempt: int = Field(ge=1, description="Its attempt number.")
    manifest_sha256: str = Field(pattern=SHA256_PATTERN, description="sha256 of that attempt's manifest.json.")
    location: str = Field("", description="Where that attempt lives in the store (a path or URL), for readers.")
    point: PointRef | None = Field(None, description="The point it ran, when the upstream stage is swept.")

    @property
    def unit(self) -> str:
        """Its place under the run: the stage, or ``stage/point-<id>``."""
        return unit(self.stage, self.point.id if self.point else None)


class ReusedAttempt(BaseModel):
    """The completed attempt a ``cached`` attempt reused instead of running its notebook."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str = Field(description="The pipeline run it belongs to.")
    attempt: int = Field(ge=1, description="Its attempt number.")
    manifest_sha256: str = Field(pattern=SHA256_PATTERN, description="sha256 of its manifest.json as stored.")
    location: str = Field("", description="Where it lives in the store (a path or URL).")
    mlflow_run_id: str = Field("", description="Its MLflow stage run.")


class SealedModel(BaseModel):
    """A model version the attempt registered, under seal: every file of its MLflow artifacts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Registered model name.")
    version: str = Field(description="Version number in the registry.")
    source: str = Field(description="Where MLflow keeps its files (the version's source URI, e.g. models:/m-...).")
    files: tuple[ManifestFile, ...] = Field(description="Every file of the model, by path, as registered.")
    sha256: str = Field(pattern=SHA256_PATTERN, description="sha256 of the file list (see model_digest).")
    signature_sha256: str | None = Field(
        None, description="sha256 of the OpenSSF model-signing signature stored beside the files; None: unsigned."
    )

    @property
    def ref(self) -> str:
        """``NAME/VERSION``."""
        return f"{self.name}/{self.version}"


class CarriedFile(BaseModel):
    """A file the stage carried beside its notebook (a helper module, a ``files:`` match), stored by content."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(description="Path relative to the pipeline's directory, '/'-separated.")
    sha256: str = Field(pattern=SHA256_PATTERN, description="sha256 of its bytes; its copy is at files/<sha256>.")


def model_digest(files: tuple[ManifestFile, ...] | list[ManifestFile]) -> str:
    """sha256 of the ``<sha256>  <path>`` lines of ``files``, sorted by path, each ending in a newline
    (the format of ``sha256sum``): one value standing for a model's files, tagged on its version."""
    lines = "".join(f"{f.sha256}  {f.path}\n" for f in sorted(files, key=lambda f: f.path))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


class Manifest(BaseModel):
    """The record of one finished stage attempt."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = Field(1, description="Format version of this record (absent: 1, as nbops 0.1 wrote).")
    pipeline: str = Field(description="Pipeline name.")
    run_id: str = Field(description="Pipeline run id.")
    stage: str = Field(description="Stage name.")
    attempt: int = Field(ge=1, description="Attempt number within the stage and run.")
    status: str = Field(description="Outcome of the attempt (a value of nbops.status.StageStatus).")
    notebook: NotebookRef = Field(description="The notebook that ran and its hash.")
    parameters: dict[str, Any] = Field(description="Effective parameters injected into the notebook.")
    metrics: dict[str, float] = Field(description="Final values of the metrics the stage logged.")
    image: str | None = Field(description="Container image the stage ran in; None outside a container.")
    environment: str | None = Field(None, description="Python environment it ran in: 'python 3.11.9 at /prefix'.")
    packages_sha256: str | None = Field(
        None, description="sha256 of the sorted 'name==version' lines of the environment's installed packages."
    )
    lock_sha256: str | None = Field(None, description="sha256 of the promoted lock it ran from; None when local.")
    git_commit: str | None = Field(
        None, description="Commit of the code ('unknown' outside git; from the lock when promoted)."
    )
    git_dirty: bool | None = Field(None, description="Whether tracked files differed from that commit.")
    mlflow_run_id: str = Field(description="MLflow run id of the attempt's nested run.")
    finished_at: str = Field(description="When the attempt finished, ISO 8601 with offset.")
    nbops_version: str = Field(description="nbops version that ran the attempt.")
    inputs: tuple[ManifestInput, ...] = Field((), description="Upstream attempts consumed, in the order read.")
    files: tuple[ManifestFile, ...] = Field(description="Every file of the attempt but the manifest, by path.")
    cache_key: str | None = Field(
        None,
        description="Key of what the attempt ran with (notebook, files, parameters, "
        "inputs, environment, nbops version); None when not reusable.",
    )
    reused: ReusedAttempt | None = Field(None, description="For status `cached`: the attempt reused instead.")
    models: tuple[SealedModel, ...] = Field((), description="The model versions the attempt registered, sealed.")
    carried: tuple[CarriedFile, ...] = Field((), description="The helper files the stage ran with, by content.")
    point: PointRef | None = Field(None, description="The point of a swept stage this attempt ran.")

    @property
    def unit(self) -> str:
        """Its place under the run: the stage, or ``stage/point-<id>``."""
        return unit(self.stage, self.point.id if self.point else None)

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if not 1 <= value <= SCHEMA_VERSION:
            raise ValueError(f"schema version {value}; this nbops reads 1 to {SCHEMA_VERSION} (upgrade nbops?)")
        return value

    @model_validator(mode="after")
    def _paths_unique(self) -> Manifest:
        paths = [f.path for f in self.files]
        repeated = sorted({p for p in paths if paths.count(p) > 1})
        if repeated:
            raise ValueError(f"files listed more than once: {', '.join(repeated)}")
        return self

    def to_bytes(self) -> bytes:
        """Canonical JSON (sorted keys, indent 2): the same manifest always gives the same bytes."""
        body = self.model_dump(mode="json")
        for record in (body, *body["inputs"]):  # absent unless swept: unswept manifests read as before
            if record.get("point", 0) is None:
                del record["point"]
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode("utf-8")

    @property
    def sha256(self) -> str:
        """sha256 of ``to_bytes()``: of ``manifest.json`` as nbops writes it."""
        return hashlib.sha256(self.to_bytes()).hexdigest()


def file_sha256(path: Path) -> str:
    """Streaming sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def list_files(attempt_dir: Path, leave_out: Collection[str] = (MANIFEST,)) -> list[ManifestFile]:
    """Every file below ``attempt_dir`` with size and sha256, sorted by path; ``leave_out`` (paths
    relative to it: the manifest) and temp files of unfinished atomic writes are left out."""
    files = []
    for path in sorted(p for p in attempt_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(attempt_dir).as_posix()
        if rel in leave_out or is_temp(path.name):
            continue
        files.append(ManifestFile(path=rel, size=path.stat().st_size, sha256=file_sha256(path)))
    return files


def build_manifest(attempt_dir: Path, **fields: Any) -> Manifest:
    """The manifest of a finished attempt: ``fields`` plus every file of ``attempt_dir``.

    Raises:
        TypeError: ``files`` was passed (they are listed here, from the directory).
        pydantic.ValidationError: ``fields`` do not make a manifest (a bug of the caller).
    """
    if "files" in fields:
        raise TypeError("build_manifest lists the attempt's files itself; do not pass files=")
    return Manifest(schema_version=SCHEMA_VERSION, files=tuple(list_files(attempt_dir)), **fields)


def parse_manifest(raw: bytes, where: str) -> Manifest:
    """Parse manifest bytes read from ``where`` (a path or URL, named in errors).

    Raises:
        InputError: not JSON, not a manifest of a known schema, or a file entry with an
            unsafe path; every problem is listed.
    """
    try:
        data: Any = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{where}: unreadable manifest, not JSON ({exc}); the attempt cannot be trusted.") from None
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(e) for e in exc.errors()[:_MAX_PROBLEMS]]
        if exc.error_count() > _MAX_PROBLEMS:
            problems.append(f"... and {exc.error_count() - _MAX_PROBLEMS} more")
        header = f"{where}: not a manifest this nbops can read; the attempt cannot be trusted:"
        raise InputError(format_problems(header, problems)) from None


def read_manifest(attempt_dir: Path) -> Manifest:
    """The manifest of the attempt in ``attempt_dir``.

    Raises:
        InputError: there is none (the attempt never finished) or it is unreadable.
    """
    path = attempt_dir / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{attempt_dir}: no {MANIFEST}; the attempt did not finish and cannot be read.") from None
    except OSError as exc:
        raise InputError(f"{path}: unreadable manifest ({exc.strerror or exc}).") from None
    return parse_manifest(raw, str(path))


def write_manifest(attempt_dir: Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` atomically: the attempt's last write.

    Raises:
        InfraError: the file system refused.
    """
    target = attempt_dir / MANIFEST
    write_atomic(target, manifest.to_bytes())
    return target


def _problem(error: ErrorDetails) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(top level)"
    return f"{where}: {str(error['msg']).removeprefix('Value error, ')}"
