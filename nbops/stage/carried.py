"""The helper files a stage carries beside its notebook (its ``files:`` globs and the ``*.py``
beside the notebook), as the attempt's lineage keeps them: read once before the kernel starts,
stored by content (``files/<sha256>``, as ``nbops promote`` stores them) and listed in the
manifest, so the code that made a result can be recovered even from an uncommitted work tree."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from nbops.errors import InputError
from nbops.lock import file_rel
from nbops.spec import Pipeline
from nbops.storage import Store
from nbops.storage.manifest import CarriedFile


@dataclass(frozen=True)
class Carried:
    """One carried file: its path, its sha256 and, read from the work tree, its bytes (a promoted
    stage's files were stored by ``nbops promote``: None)."""

    path: str
    sha256: str
    raw: bytes | None = None


def snapshot(pipeline: Pipeline, stage: str) -> tuple[Carried, ...]:
    """The stage's carried files as they are now: from the lock when promoted, else read from the work tree.

    Raises:
        InputError: a file of the work tree cannot be read.
    """
    frozen = pipeline.frozen.get(stage)
    if frozen is not None:
        return tuple(Carried(f.path, f.sha256) for f in frozen.files)
    found = []
    for rel in pipeline.stage_files(stage):
        try:
            raw = (pipeline.root / rel).read_bytes()
        except OSError as exc:
            where = pipeline.root / rel
            raise InputError(f"{where}: cannot read '{rel}', carried by stage '{stage}' ({exc}).") from None
        found.append(Carried(rel, hashlib.sha256(raw).hexdigest(), raw))
    return tuple(found)


def publish(store: Store, carried: tuple[Carried, ...]) -> tuple[CarriedFile, ...]:
    """Store each file read from the work tree by content (a no-op for copies already there) and
    list them all for the manifest.

    Raises:
        InfraError: the store did not take a copy.
    """
    for file in carried:
        if file.raw is not None:
            store.publish(file_rel(file.sha256), file.raw)
    return tuple(CarriedFile(path=f.path, sha256=f.sha256) for f in carried)
