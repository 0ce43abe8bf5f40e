"""The data scientist's tag vocabulary, in one place (DESIGN §3)."""

from __future__ import annotations

from typing import Any

PARAMETERS = "parameters"
"""Papermill's defaults cell, read by nbops as the typed parameter contract."""

SKIP = frozenset({"skip", "nbops-skip"})
"""Exploration cells: run in Jupyter, never in a pipeline run."""

METRICS = "metrics"
"""Numeric variables assigned in these cells become MLflow metrics of the stage."""

INJECTED = "injected-parameters"
"""Papermill's tag on the cell it inserts with the run's parameters."""

OUTPUT_IGNORED = frozenset({"nbval-ignore-output", "nbval-skip"})
"""nbval's tags: ``nbops test --nbval`` does not compare these cells' outputs."""


def cell_tags(cell: Any) -> set[str]:
    """The tags of a cell as a set (empty when the cell has none)."""
    tags = cell.get("metadata", {}).get("tags", []) or []
    return {str(t) for t in tags}


def is_skipped(cell: Any) -> bool:
    """True for cells that must never run in a pipeline run."""
    return bool(cell_tags(cell) & SKIP)
