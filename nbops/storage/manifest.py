"""The stage attempt manifest: the last file written, the only proof an attempt finished."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from nbops.errors import InfraError, InputError
from nbops.storage.layout import MANIFEST

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """Streaming sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def list_files(attempt: Path) -> list[dict[str, Any]]:
    """Every file below ``attempt`` (manifest excluded) with size and sha256, sorted by path."""
    files = []
    for path in sorted(p for p in attempt.rglob("*") if p.is_file()):
        rel = path.relative_to(attempt).as_posix()
        if rel == MANIFEST or rel.endswith(".tmp"):
            continue
        files.append({"path": rel, "size": path.stat().st_size, "sha256": file_sha256(path)})
    return files


def build_manifest(attempt: Path, record: dict[str, Any]) -> dict[str, Any]:
    """The manifest body: ``record`` plus every file of the attempt with its sha256."""
    return dict(record, files=list_files(attempt))


def write_manifest(attempt: Path, body: dict[str, Any]) -> Path:
    """Write ``manifest.json`` atomically (temp file, fsync, rename): the attempt's last write."""
    target = attempt / MANIFEST
    tmp = attempt / f".{MANIFEST}.tmp"
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(body, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        raise InfraError(f"{target}: cannot write the manifest ({exc.strerror}).") from exc
    return target


def read_manifest(attempt: Path) -> dict[str, Any]:
    """Read an attempt's manifest.

    Raises:
        InputError: there is none (the attempt never finished) or it is unreadable.
    """
    path = attempt / MANIFEST
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{attempt}: no {MANIFEST}; the attempt did not finish and cannot be read.") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable manifest ({exc}).") from None
    return data
