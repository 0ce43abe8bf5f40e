"""The sections of ``nbops diff``, compared: pure rules over records already read from the store.

Each section of a stage's comparison is a :class:`Section`: its name and what differs, as typed
changes, empty when the two attempts agree. The rules here read nothing; :mod:`nbops.attempts.diff`
reads the records and passes them in, :mod:`nbops.attempts.diff_notebook` compares notebooks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

UNKNOWN = "unknown"
"""The origin of a parameter read from a manifest alone (an attempt without a start record)."""


@dataclass(frozen=True)
class Param:
    """A parameter's value and where it came from (``notebook``, ``spec``, ``run``, ``point``, ``unknown``)."""

    value: Any
    origin: str


@dataclass(frozen=True)
class ParameterChange:
    """A parameter whose value (or origin) differs; None on the side that lacks it."""

    name: str
    a: Param | None
    b: Param | None


@dataclass(frozen=True)
class MetricChange:
    """A metric whose final value differs; None on the side that lacks it."""

    name: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        """``b - a`` when both are there."""
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def relative(self) -> float | None:
        """``(b - a) / |a|`` when both are there and ``a`` is not zero."""
        delta = self.delta
        return None if delta is None or not self.a else delta / abs(self.a)


@dataclass(frozen=True)
class Upstream:
    """An upstream attempt a stage consumed: where it lives and what its outputs were."""

    run: str
    attempt: int
    manifest_sha256: str
    data_sha256: str | None
    """Digest of that attempt's ``outputs/`` files (``sha256sum`` lines); None: its manifest is unreadable."""


@dataclass(frozen=True)
class InputChange:
    """An upstream unit whose data differed between the two attempts; None on the side that lacks it."""

    unit: str
    a: Upstream | None
    b: Upstream | None


@dataclass(frozen=True)
class ValueChange:
    """A named value that differs (a file's sha256, a package's version, the commit, the status...)."""

    name: str
    a: Any
    b: Any


Change = ParameterChange | MetricChange | InputChange | ValueChange


@dataclass(frozen=True)
class Line:
    """A line of a cell's diff: ``op`` is ``" "`` (both), ``"-"`` (A only), ``"+"`` (B only) or
    ``"…"`` (unchanged lines left out; ``text`` says how many)."""

    op: str
    text: str


@dataclass(frozen=True)
class CellChange:
    """A cell added, removed or changed, by its index in each notebook (injected parameters left out)."""

    kind: str
    """``added``, ``removed`` or ``changed``."""
    a_index: int | None
    b_index: int | None
    cell_type: str
    source: tuple[Line, ...]
    """The source's line diff; empty when the source is the same."""
    outputs: tuple[Line, ...]
    """The outputs' line diff (as text); empty when the outputs are the same."""


@dataclass(frozen=True)
class Section:
    """One section of a stage's comparison; the same when it has no changes and no cell changes."""

    name: str
    changes: tuple[Change, ...] = ()
    cells: tuple[CellChange, ...] = ()
    note: str = ""
    """How the section was compared, when it matters (``executed notebooks``, ``no start record``)."""

    @property
    def same(self) -> bool:
        """Whether nothing differs."""
        return not self.changes and not self.cells


def parameters(a: Mapping[str, Param], b: Mapping[str, Param]) -> Section:
    """Parameters by name: a value or an origin that differs, one present on one side only."""
    changes = [ParameterChange(name, a.get(name), b.get(name)) for name in _names(a, b) if a.get(name) != b.get(name)]
    return Section("parameters", tuple(changes))


def metrics(a: Mapping[str, float], b: Mapping[str, float]) -> Section:
    """Metrics by name: a final value that differs (NaN equals NaN), one logged on one side only."""
    changes = [
        MetricChange(name, a.get(name), b.get(name))
        for name in _names(a, b)
        if not _same_number(a.get(name), b.get(name))
    ]
    return Section("metrics", tuple(changes))


def inputs(a: Mapping[str, Upstream], b: Mapping[str, Upstream]) -> Section:
    """Upstream units by name: the data they passed differs (same attempt, or outputs of the same digest,
    count as the same), or one side consumed the unit and the other did not."""
    changes = [
        InputChange(unit, a.get(unit), b.get(unit)) for unit in _names(a, b) if not _same_data(a.get(unit), b.get(unit))
    ]
    return Section("inputs", tuple(changes))


def values(name: str, a: Mapping[str, Any], b: Mapping[str, Any], note: str = "") -> Section:
    """A section of named values (files by path, the environment, the commit, the status): each that differs."""
    return Section(
        name, tuple(ValueChange(k, a.get(k), b.get(k)) for k in _names(a, b) if a.get(k) != b.get(k)), note=note
    )


def package_versions(lines: Iterable[str]) -> dict[str, str]:
    """``name==version`` lines as ``{name: version}`` (a line without ``==``: the whole line, version '')."""
    found: dict[str, str] = {}
    for line in lines:
        name, _, version = line.partition("==")
        found[name.strip()] = version.strip()
    return found


def _names(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The keys of both, ``a``'s order first, then ``b``'s new ones."""
    return [*a, *(k for k in b if k not in a)]


def _same_number(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def _same_data(a: Upstream | None, b: Upstream | None) -> bool:
    if a is None or b is None:
        return a is b
    if a.manifest_sha256 == b.manifest_sha256:
        return True
    return a.data_sha256 is not None and a.data_sha256 == b.data_sha256
