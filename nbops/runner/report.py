"""What ``nbops run`` prints: live progress lines and the final summary table."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import Any, Protocol


class _Stage(Protocol):
    name: str
    status: str
    duration: float
    attempt: int | None
    mlflow_run_id: str | None
    message: str
    exit_code: int | None
    log_path: Any


class Progress:
    """Prints one timestamped line per stage event, to stdout, flushed."""

    def __init__(self, pipeline: str, run_id: str, stages: list[str]) -> None:
        self.pipeline, self.run_id, self.stages = pipeline, run_id, stages
        self.width = max(len(s) for s in stages)
        self.t0 = time.monotonic()

    def _say(self, mark: str, stage: str, text: str) -> None:
        elapsed = time.monotonic() - self.t0
        print(f"[{elapsed:7.1f}s] {mark:<5} {stage:<{self.width}}  {text}", flush=True)

    def start(self, jobs: int, parent_run: str) -> None:
        """Announce the run."""
        print(
            f"nbops run {self.pipeline}: run {self.run_id}, {len(self.stages)} stage(s), "
            f"{jobs} at a time (MLflow run {parent_run})",
            flush=True,
        )

    def started(self, stage: str) -> None:
        """A stage command was launched."""
        self._say("start", stage, "running")

    def succeeded(self, st: _Stage) -> None:
        """A stage finished with exit 0."""
        self._say("ok", st.name, f"{st.duration:.1f}s  attempt {st.attempt}  mlflow {st.mlflow_run_id}")

    def failed(self, st: _Stage) -> None:
        """A stage failed; show why and where its log is."""
        self._say("FAIL", st.name, f"exit {st.exit_code} after {st.duration:.1f}s: {st.message}")
        if st.log_path is not None:
            print(f"        log: {st.log_path}", file=sys.stdout, flush=True)
            try:
                tail = st.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-12:]
            except OSError:
                tail = []
            for line in tail:
                print(f"        | {line}", flush=True)

    def skipped(self, stage: str, cause: str) -> None:
        """A stage will not run because an upstream stage failed."""
        self._say("skip", stage, f"not run: upstream '{cause}' failed")


def summary_table(stages: Iterable[_Stage]) -> str:
    """A plain-text table: stage, status, attempt, duration, MLflow run id."""
    rows = [("stage", "status", "attempt", "duration", "mlflow run")]
    for st in stages:
        duration = f"{st.duration:.1f}s" if st.status in ("succeeded", "failed") else "-"
        rows.append((st.name, st.status, str(st.attempt or "-"), duration, st.mlflow_run_id or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n" + "\n".join(lines)
