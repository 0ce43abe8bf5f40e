"""The Python environment a stage runs in, recorded so an auditor can tell environments apart.

A pod names its image; a local run names its interpreter and a digest of the installed
packages. The digest is the sha256 of the sorted ``name==version`` lines read from the
``*.dist-info`` directory names on ``sys.path`` (a directory listing, about a millisecond,
where importing every package's metadata costs a fifth of a second).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

_DIST = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+?)\.(dist-info|egg-info)$")


@dataclass(frozen=True)
class Environment:
    """An interpreter and what is installed beside it."""

    description: str
    """``python 3.11.9 at /path/to/prefix``."""
    packages: tuple[str, ...]
    """Sorted ``name==version`` lines (names normalized as in PEP 503)."""

    @property
    def packages_sha256(self) -> str:
        """sha256 of ``packages`` joined by newlines."""
        return hashlib.sha256("\n".join(self.packages).encode("utf-8")).hexdigest()


@cache
def current() -> Environment:
    """This interpreter's environment (computed once per process)."""
    version = ".".join(str(v) for v in sys.version_info[:3])
    return Environment(f"python {version} at {sys.prefix}", installed_packages())


def installed_packages() -> tuple[str, ...]:
    """``name==version`` of every distribution found on ``sys.path``, sorted, without repeats."""
    found = set()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            match = _DIST.match(name)
            if match:
                normalized = re.sub(r"[-_.]+", "-", match["name"]).lower()
                found.add(f"{normalized}=={match['version']}")
    return tuple(sorted(found))


@contextmanager
def overridden(values: Mapping[str, str]) -> Iterator[None]:
    """This process's environment with ``values`` set, restored as it was on the way out."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
