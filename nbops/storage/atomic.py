"""Write a file whole or not at all: the one way nbops replaces a file.

A reader (another stage sharing the cache, Airflow parsing ``dags/``, a crash recovery)
sees either the old file or the new one, never half of one: the bytes go to a private
temp name in the same directory, are flushed to disk, and are renamed into place.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from nbops.errors import InfraError

_TEMP = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")


def temp_path(path: Path) -> Path:
    """A private temp name beside ``path``: hidden, unique to this process and call."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def is_temp(name: str) -> bool:
    """Whether a file name is one of ``temp_path``'s (left behind by a crash, never content)."""
    return _TEMP.match(name) is not None


def write_atomic(path: Path, raw: bytes) -> None:
    """Replace ``path`` with ``raw``, creating its directory when needed.

    Raises:
        InfraError: the file system refused (naming ``path``); nothing was replaced.
    """
    with replacing(path) as tmp:
        try:
            with tmp.open("wb") as fh:
                fh.write(raw)
        except OSError as exc:
            raise _error(path, exc) from exc


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temp path for the caller to fill; on a clean exit it is flushed to disk and
    renamed to ``path``, on an exception it is removed and ``path`` is untouched.

    Exceptions of the caller's block propagate unchanged.

    Raises:
        InfraError: creating the directory, syncing or renaming failed (naming ``path``).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _error(path, exc) from exc
    tmp = temp_path(path)
    try:
        yield tmp
        try:
            _fsync(tmp)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            raise _error(path, exc) from exc
    finally:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; some file systems cannot sync a directory, which is fine."""
    with suppress(OSError):
        _fsync(directory)


def _error(path: Path, exc: OSError) -> InfraError:
    return InfraError(f"{path}: cannot write ({exc.strerror or exc}).")
