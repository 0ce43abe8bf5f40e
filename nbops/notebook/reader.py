"""Read a notebook from disk and validate it with nbformat, with errors naming the file."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from nbops.errors import InputError


@dataclass(frozen=True)
class LoadedNotebook:
    """A validated notebook, the exact bytes it was read from and their sha256."""

    path: Path
    node: NotebookNode
    raw: bytes
    sha256: str


def sha256_bytes(raw: bytes) -> str:
    """Hex sha256 of some bytes."""
    return hashlib.sha256(raw).hexdigest()


def parse_notebook(raw: bytes, path: Path) -> LoadedNotebook:
    """Parse and validate notebook bytes; ``path`` is only used to name the file in errors."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a notebook: the file is not UTF-8 text.") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}: not a notebook: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})."
        ) from None
    if not isinstance(data, dict) or "cells" not in data:
        raise InputError(f"{path}: not a notebook: the JSON has no 'cells' list.")
    try:
        node = nbformat.reads(json.dumps(data), as_version=4)  # type: ignore[no-untyped-call]
        nbformat.validate(node)
    except nbformat.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) if getattr(exc, "absolute_path", None) else ""
        at = f" at {where}" if where else ""
        first = str(exc.message).splitlines()[0] if getattr(exc, "message", None) else str(exc).splitlines()[0]
        raise InputError(f"{path}: not a valid nbformat 4 notebook{at}: {first}") from None
    except Exception as exc:  # nbformat raises several types for unreadable documents
        raise InputError(f"{path}: not a valid notebook: {exc}") from None
    return LoadedNotebook(path=path, node=node, raw=raw, sha256=sha256_bytes(raw))


def read_notebook(path: Path) -> LoadedNotebook:
    """Read and validate the notebook at ``path``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: notebook not found.") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read notebook ({exc.strerror}).") from exc
    return parse_notebook(raw, path)
