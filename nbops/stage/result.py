"""What ``nbops exec-stage`` is asked to do and what it reports back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from nbops.status import StageStatus


@dataclass(frozen=True)
class StageRequest:
    """Everything ``nbops exec-stage`` was asked to do."""

    pipeline_file: Path | None
    stage: str
    run_id: str
    params: dict[str, Any] = field(default_factory=dict)
    promoted: str | None = None
    run_date: str | None = None
    """What ``${run_date}`` stands for (default: :func:`nbops.rundate.current`)."""
    force: bool = False
    """Run the notebook even when a completed attempt could be reused (the attempt is still indexed)."""


@dataclass(frozen=True)
class StageResult:
    """How one attempt ended, for the runner's summary and ``--result-file``."""

    stage: str
    run_id: str
    status: StageStatus
    attempt: int | None = None
    attempt_dir: str | None = None
    mlflow_run_id: str | None = None
    duration_s: float = 0.0
    message: str = ""
    failed_cell: int | None = None
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds spent in each phase of the attempt that ran (prepare, claim, run, archive, ...)."""

    @property
    def exit_code(self) -> int:
        """The stage command's exit code (owned by :class:`StageStatus`)."""
        return int(self.status.exit_code)

    def to_json(self) -> str:
        """The result as one JSON document (``exit_code`` included for readers in other languages)."""
        body = asdict(self)
        body["status"] = self.status.value
        body["exit_code"] = self.exit_code
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StageResult:
        """Read a result written by :meth:`to_json`.

        Raises:
            ValueError: the text is not such a result.
        """
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a stage result is a JSON object")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["status"] = StageStatus(values.get("status"))
        return cls(**values)
