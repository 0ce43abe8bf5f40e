"""Sweeps (DESIGN §17): one stage over many parameter sets, each set a *point* with its own attempts.

A stage declares ``grid:`` (every combination, the keys' order as written, the last key varying
fastest), ``foreach:`` (an explicit list) or ``foreach_from:`` (a JSON list of parameter sets an
upstream stage writes to its outputs, read at run time). Each point is a stage attempt of its own
under ``<run>/<stage>/point-<id>/attempt-<n>/``: its id is a digest of its parameters, so a point
keeps its directory, its reuse key and its index entry when the grid around it widens, and its
label (``train[3] C=10.0 penalty=l1``) gives its index in the sweep as well.

Pure and light (no pydantic): the DAG module reads the points the lock froze.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

POINT_PREFIX = "point-"
ID_LENGTH = 12


@dataclass(frozen=True)
class Point:
    """One parameter set of a swept stage."""

    index: int
    parameters: Mapping[str, Any]

    @property
    def id(self) -> str:
        """A digest of the parameters: the point's directory and its reuse index do not depend on its index."""
        return point_id(self.parameters)

    def describe(self) -> str:
        """``C=10.0 penalty=l1``."""
        return " ".join(f"{k}={_text(v)}" for k, v in self.parameters.items())

    def label(self, stage: str) -> str:
        """``train[3] C=10.0 penalty=l1``."""
        described = self.describe()
        return f"{stage}[{self.index}]" + (f" {described}" if described else "")

    def to_json(self) -> dict[str, Any]:
        """What a manifest, a lock and a result keep of it."""
        return {"index": self.index, "id": self.id, "parameters": dict(self.parameters)}


def point_id(parameters: Mapping[str, Any]) -> str:
    """The first hex digits of the sha256 of the parameters as canonical JSON."""
    text = json.dumps(dict(parameters), sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:ID_LENGTH]


def unit(stage: str, point: str | None) -> str:
    """Where a stage's attempts live under its run, '/'-separated: ``train``, or ``train/point-<id>``."""
    return stage if point is None else f"{stage}/{POINT_PREFIX}{point}"


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[Point]:
    """Every combination of the grid's values, in the keys' order (the last key varies fastest)."""
    keys = list(grid)
    combos = itertools.product(*(grid[k] for k in keys))
    return [Point(i, dict(zip(keys, values, strict=True))) for i, values in enumerate(combos)]


def list_points(sets: Sequence[Mapping[str, Any]]) -> list[Point]:
    """An explicit list of parameter sets, in its order."""
    return [Point(i, dict(s)) for i, s in enumerate(sets)]


def swept_keys(points: Sequence[Point]) -> list[str]:
    """The parameters any point sets, in the order first met."""
    return list(dict.fromkeys(k for p in points for k in p.parameters))


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict | list) else str(value)
