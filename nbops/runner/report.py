"""What ``nbops run`` prints, all to stderr: live progress lines and the final summary table."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import Any, Protocol


class _Stage(Protocol):
    name: str
    status: str
    duration: float
    tries: int
    attempt: int | None
    mlflow_run_id: str | None
    message: str
    exit_code: int | None
    log_path: Any


def say(text: str) -> None:
    """One line of the runner's output (stderr, flushed)."""
    print(text, file=sys.stderr, flush=True)


class Progress:
    """Prints one timestamped line per stage event."""

    def __init__(self, pipeline: str, run_id: str, stages: list[str]) -> None:
        self.pipeline, self.run_id, self.stages = pipeline, run_id, stages
        self.width = max(len(s) for s in stages)
        self.t0 = time.monotonic()

    def _say(self, mark: str, stage: str, text: str) -> None:
        elapsed = time.monotonic() - self.t0
        say(f"[{elapsed:7.1f}s] {mark:<5} {stage:<{self.width}}  {text}")

    def start(self, jobs: int, parent_run: str) -> None:
        """Announce the run."""
        say(
            f"nbops run {self.pipeline}: run {self.run_id}, {len(self.stages)} stage(s), "
            f"{jobs} at a time (MLflow run {parent_run})"
        )

    def started(self, stage: str, tries: int = 1) -> None:
        """A stage command was launched (``tries`` counts launches in this run)."""
        self._say("start", stage, "running" if tries == 1 else f"running (try {tries})")

    def succeeded(self, st: _Stage) -> None:
        """A stage finished with exit 0."""
        self._say("ok", st.name, f"{st.duration:.1f}s  attempt {st.attempt}  mlflow {st.mlflow_run_id}")

    def cached(self, st: _Stage) -> None:
        """A stage reused a completed attempt instead of running its notebook."""
        self._say("cache", st.name, f"{st.message}; no notebook ran  attempt {st.attempt}  mlflow {st.mlflow_run_id}")

    def retrying(self, st: _Stage, delay: float, retries: int) -> None:
        """A retryable failure: the stage runs again after ``delay`` seconds."""
        self._say(
            "retry",
            st.name,
            f"exit {st.exit_code} after {st.duration:.1f}s (attempt {st.attempt}): {st.message}; "
            f"retry {st.tries} of {retries} in {delay:g}s",
        )

    def failed(self, st: _Stage) -> None:
        """A stage failed or was stopped; show why and where its log is."""
        mark = "KILL" if st.status == "killed" else "FAIL"
        self._say(mark, st.name, f"exit {st.exit_code} after {st.duration:.1f}s: {st.message}")
        if st.log_path is not None:
            say(f"        log: {st.log_path}")
            try:
                tail = st.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-12:]
            except OSError:
                tail = []
            for line in tail:
                say(f"        | {line}")

    def skipped(self, stage: str, cause: str) -> None:
        """A stage will not run because an upstream stage failed."""
        self._say("skip", stage, f"not run: upstream '{cause}' failed")


def summary_table(stages: Iterable[_Stage]) -> str:
    """A plain-text table: stage, status, attempt, tries, duration, MLflow run id."""
    rows = [("stage", "status", "attempt", "tries", "duration", "mlflow run")]
    for st in stages:
        duration = f"{st.duration:.1f}s" if st.tries else "-"
        tries = str(st.tries) if st.tries else "-"
        rows.append((st.name, st.status, str(st.attempt or "-"), tries, duration, st.mlflow_run_id or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n" + "\n".join(lines)
