"""The promotion lock: the spec, each stage notebook's sha256 and parameter schema, frozen.

``nbops promote`` writes it twice with the same bytes: beside the generated DAG file (what
Airflow parses) and content-addressed in the artifact store (what a stage pod reads):

    <artifact root>/locks/<sha256 of the lock>.json
    <artifact root>/notebooks/<sha256 of the notebook>.ipynb
    <artifact root>/files/<sha256 of a file>          (``files:``: what travels with a notebook)

The text is canonical JSON (sorted keys, fixed indent), so promoting an unchanged
pipeline produces identical bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nbops.errors import InfraError, InputError
from nbops.graph import MONITOR_STAGE
from nbops.notebook.parameters import Param
from nbops.spec import FrozenFile, FrozenNotebook, Pipeline, PipelineSpec, ResolvedStage

if TYPE_CHECKING:
    from nbops.storage import Store

LOCK_VERSION = 1
LOCKS_DIR = "locks"
NOTEBOOKS_DIR = "notebooks"
FILES_DIR = "files"


class LockedFile(BaseModel):
    """A file frozen with a stage's notebook (``files:``), stored by content."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(description="Path relative to the pipeline file's directory (POSIX).")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the file's bytes.")


class LockedStage(BaseModel):
    """One stage's frozen notebook and the files that travel with it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    notebook: str = Field(description="Notebook path as written in the spec.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the notebook's bytes.")
    parameters: tuple[Param, ...] = Field(description="The notebook's parameter schema.")
    settings: ResolvedStage = Field(
        description="The stage with defaults applied, so the DAG factory reads plain JSON and resolves nothing."
    )
    files: tuple[LockedFile, ...] = Field((), description="Files the notebook needs, by content.")


class Lock(BaseModel):
    """Everything the DAG factory and a promoted stage need, and nothing that varies by machine."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lock_version: Literal[1] = Field(description="Format version of this file.")
    nbops_version: str = Field(description="nbops version that promoted the pipeline.")
    pipeline_file: str = Field(description="The pipeline file, relative to the lock beside the DAG.")
    spec_sha256: str = Field(description="sha256 of the pipeline file's bytes.")
    spec: PipelineSpec = Field(description="The validated spec.")
    stages: dict[str, LockedStage] = Field(description="Frozen notebooks by stage.")
    monitor: LockedStage | None = Field(None, description="The frozen monitor notebook (`monitor:`), if any.")
    git_commit: str = Field("unknown", description="Newest commit that changed the spec or a stage notebook.")
    git_dirty: bool = Field(False, description="Whether one of them differed from it (or was never committed).")

    @property
    def name(self) -> str:
        """The pipeline name (the DAG id)."""
        return self.spec.name

    def resolved(self, stage: str) -> ResolvedStage:
        """A stage with defaults applied."""
        return self.spec.resolved(stage)

    def to_text(self) -> str:
        """Canonical JSON text: the same lock always gives the same bytes."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def pipeline(self, path: Path, store: Store, stage: str | None) -> Pipeline:
        """The pipeline as the stage command for ``stage`` sees it: that stage's notebook is
        fetched from the artifact store; the others are only named (a pod runs one stage)."""
        frozen = {}
        every = {**self.stages, **({MONITOR_STAGE: self.monitor} if self.monitor is not None else {})}
        for name, locked in every.items():
            rel = notebook_rel(locked.sha256)
            path_of = store.fetch(rel) if name == stage else store.local_root / rel
            files = tuple(
                FrozenFile(path=f.path, source=store.fetch(file_rel(f.sha256)), sha256=f.sha256)
                for f in (locked.files if name == stage else ())
            )
            frozen[name] = FrozenNotebook(path=path_of, sha256=locked.sha256, files=files)
        return Pipeline(spec=self.spec, path=path, sha256=self.spec_sha256, frozen=frozen)


def sha256_text(text: str) -> str:
    """sha256 of a text's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def notebook_rel(sha256: str) -> str:
    """Where a promoted notebook's bytes live, relative to the artifact root."""
    return f"{NOTEBOOKS_DIR}/{sha256}.ipynb"


def file_rel(sha256: str) -> str:
    """Where a file promoted with a notebook lives, relative to the artifact root."""
    return f"{FILES_DIR}/{sha256}"


def lock_rel(sha256: str) -> str:
    """Where a published lock lives, relative to the artifact root."""
    return f"{LOCKS_DIR}/{sha256}.json"


def parse_lock(raw: bytes, where: Path) -> Lock:
    """Parse lock bytes; InputError naming the file when they are not a lock."""
    try:
        data: Any = json.loads(raw.decode("utf-8"))
        return Lock.model_validate(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{where}: not a JSON lock file ({exc}). Run `nbops promote` again.") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InputError(
            f"{where}: not a lock this nbops can read ({exc.error_count()} problem(s), first at {field}: "
            f"{first['msg']}). Run `nbops promote` again with this nbops version."
        ) from None


def read_lock(path: Path) -> tuple[Lock, str]:
    """Read a lock file; return it and the sha256 of its bytes."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: lock file not found; run `nbops promote` to create it.") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the lock file ({exc.strerror}).") from exc
    return parse_lock(raw, path), hashlib.sha256(raw).hexdigest()


def fetch_lock(store: Store, sha256: str) -> tuple[Lock, Path]:
    """The promoted lock whose bytes hash to ``sha256`` and its local path; refuses any other bytes.

    Raises:
        InfraError: the lock is not in the store (yet).
        InputError: the lock is altered or unreadable.
    """
    if not (len(sha256) == 64 and all(c in "0123456789abcdef" for c in sha256)):
        raise InputError(f"--promoted {sha256!r}: expected the 64-hex-digit sha256 of a promoted lock.")
    path = store.fetch(lock_rel(sha256))
    if not path.exists():
        # Retryable: the store may not have received the promoted files yet.
        raise InfraError(
            f"{store.url}/{lock_rel(sha256)}: the promoted lock is not in the artifact store; publish it there "
            "(nbops promote with this NBOPS_ARTIFACT_ROOT, or copy locks/ and notebooks/) before the DAG runs."
        )
    lock, actual = read_lock(path)
    if actual != sha256:
        raise InputError(
            f"{path}: the lock's bytes have sha256 {actual}, not {sha256}; the published lock was changed "
            "after `nbops promote`. Nothing was run; promote the pipeline again."
        )
    return lock, path


def describe_changes(old: Lock | None, new: Lock) -> list[str]:
    """Stages added or removed, notebooks re-hashed, parameters and settings changed."""
    if old is None:
        return [f"new DAG '{new.name}' with stages {', '.join(new.stages)}"]
    changes: list[str] = []
    added = [s for s in new.stages if s not in old.stages]
    removed = [s for s in old.stages if s not in new.stages]
    changes += [f"stage added: {s}" for s in added]
    changes += [f"stage removed: {s}" for s in removed]
    for name in (s for s in new.stages if s in old.stages):
        before, after = old.stages[name], new.stages[name]
        if before.sha256 != after.sha256:
            changes.append(
                f"stage {name}: notebook {after.notebook} changed ({before.sha256[:12]} -> {after.sha256[:12]})"
            )
        changes += [f"stage {name}: {f}" for f in _file_changes(before, after)]
        changes += [f"stage {name}: parameter {p}" for p in _param_changes(before, after)]
        changes += [f"stage {name}: {k}" for k in _dict_changes(_settings(old, name), _settings(new, name))]
    top_old = old.spec.model_dump(mode="json", exclude={"stages"})
    top_new = new.spec.model_dump(mode="json", exclude={"stages"})
    changes += [f"pipeline: {k}" for k in _dict_changes(top_old, top_new)]
    if old.nbops_version != new.nbops_version:
        changes.append(f"nbops version {old.nbops_version} -> {new.nbops_version}")
    if (old.git_commit, old.git_dirty) != (new.git_commit, new.git_dirty):
        changes.append(f"commit {_commit(old)} -> {_commit(new)}")
    return changes or ["lock rewritten (format only)"]


def _commit(lock: Lock) -> str:
    return lock.git_commit[:12] + (" (modified)" if lock.git_dirty else "")


def _file_changes(before: LockedStage, after: LockedStage) -> list[str]:
    """Files that travel with the notebook: added, removed or changed (by content)."""
    old = {f.path: f.sha256 for f in before.files}
    new = {f.path: f.sha256 for f in after.files}
    out = [f"file {p} added" for p in new if p not in old]
    out += [f"file {p} removed" for p in old if p not in new]
    out += [f"file {p} changed ({old[p][:12]} -> {new[p][:12]})" for p in new if p in old and old[p] != new[p]]
    return out


def _param_changes(before: LockedStage, after: LockedStage) -> list[str]:
    """``C: default 1.0 -> 0.5`` for each changed field of a parameter; parameters added or removed."""
    old = {p.name: p for p in before.parameters}
    new = {p.name: p for p in after.parameters}
    out = []
    for name in sorted(old.keys() | new.keys()):
        if name not in old:
            out.append(f"{name} added ({new[name].type_label}, default {_short(new[name].default)})")
        elif name not in new:
            out.append(f"{name} removed")
        else:
            fields = _dict_changes(old[name].model_dump(mode="json"), new[name].model_dump(mode="json"))
            out += [f"{name}: {change}" for change in fields]
    return out


def _settings(lock: Lock, stage: str) -> dict[str, Any]:
    return lock.resolved(stage).model_dump(mode="json", exclude={"name", "notebook"})


def _dict_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``key old -> new`` for each changed key, nested mappings by dotted key (``resources.cpu '1' -> '2'``)."""
    out = []
    for key in sorted(old.keys() | new.keys()):
        name = f"{prefix}{key}"
        if key not in old:
            out.append(f"{name} added ({_short(new[key])})")
        elif key not in new:
            out.append(f"{name} removed")
        elif isinstance(old[key], dict) and isinstance(new[key], dict):
            out += _dict_changes(old[key], new[key], f"{name}.")
        elif old[key] != new[key]:
            out.append(f"{name} {_short(old[key])} -> {_short(new[key])}")
    return out


SHORT_VALUE = 80
"""Characters of a value's repr shown in the change report before it is cut with an ellipsis."""


def _short(value: Any) -> str:
    """``repr(value)`` in full when short; a long one cut after SHORT_VALUE characters, saying how much is left."""
    text = repr(value)
    if len(text) <= SHORT_VALUE:
        return text
    return f"{text[:SHORT_VALUE]}... ({len(text) - SHORT_VALUE} more characters)"
