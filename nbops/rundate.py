"""The run date: the day a pipeline run is for, which spec parameters may name as ``${run_date}``.

A scheduled retraining reads the newest batch by writing ``as_of: "${run_date}"`` in the spec.
``nbops run`` resolves it to today (UTC) or ``--run-date``; under Airflow it is the DAG run's
logical date (its run-after date when it has none, as for asset-triggered runs). The stage
command reads it from ``NBOPS_RUN_DATE``, set by whatever started it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from nbops.errors import InputError

PLACEHOLDER = "${run_date}"
ENV_RUN_DATE = "NBOPS_RUN_DATE"


def parse(text: str, where: str) -> str:
    """``text`` as an ISO date (``YYYY-MM-DD``); InputError naming ``where`` otherwise."""
    try:
        return date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        raise InputError(f"{where}: {text!r} is not a date; write it as YYYY-MM-DD (e.g. 2026-07-01).") from None


def today() -> str:
    """Today's date in UTC, as the run date of a run started now."""
    return datetime.now(UTC).date().isoformat()


def current() -> str:
    """The run date of this process's run: ``$NBOPS_RUN_DATE``, else today (UTC)."""
    named = os.environ.get(ENV_RUN_DATE, "").strip()
    return parse(named, ENV_RUN_DATE) if named else today()


def resolve(values: Mapping[str, Any], run_date: str) -> dict[str, Any]:
    """``values`` with ``${run_date}`` in each text replaced by ``run_date``."""
    return {k: v.replace(PLACEHOLDER, run_date) if isinstance(v, str) else v for k, v in values.items()}


def mentions(values: Mapping[str, Any]) -> bool:
    """Whether any value names the run date."""
    return any(isinstance(v, str) and PLACEHOLDER in v for v in values.values())
