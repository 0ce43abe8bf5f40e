"""What ``nbops run`` prints, all to stderr: a line per stage event, each running stage's
progress (:mod:`nbops.runner.live`) and the final summary table."""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from nbops.runner.live import Board
from nbops.status import PipelineOutcome, StageState

if TYPE_CHECKING:
    from nbops.runner.plan import RunOptions
    from nbops.runner.state import RunSummary, StageRun


def say(text: str) -> None:
    """One line of the runner's output (stderr, flushed)."""
    print(text, file=sys.stderr, flush=True)


class Progress:
    """Prints one timestamped line per stage event, and shows what the running stages do in
    ``mode`` (one of :data:`nbops.runner.live.MODES`)."""

    def __init__(self, pipeline: str, run_id: str, stages: list[str], mode: str = "auto") -> None:
        self.pipeline, self.run_id, self.stages = pipeline, run_id, stages
        self.width = min(max(len(s) for s in stages), 40)
        self.t0 = time.monotonic()
        self.board = Board(mode, lambda stage, text: self._say("", stage, text))

    def _say(self, mark: str, stage: str, text: str) -> None:
        elapsed = time.monotonic() - self.t0
        say(f"[{elapsed:7.1f}s] {mark:<5} {stage:<{self.width}}  {text}")

    def start(self, jobs: int, parent_run: str) -> None:
        """Announce the run."""
        say(
            f"nbops run {self.pipeline}: run {self.run_id}, {len(self.stages)} stage(s), "
            f"{jobs} at a time (MLflow run {parent_run})"
        )
        self.board.start()

    def watch(self, st: StageRun) -> None:
        """``st`` is running: show what it is doing (its log is read now and then)."""
        self.board.watch(st)

    def close(self) -> None:
        """Stop showing the running stages (before the summary, or when the run breaks off)."""
        self.board.stop()

    def started(self, stage: str, tries: int = 1) -> None:
        """A stage command was launched (``tries`` counts launches in this run)."""
        self._say("start", stage, "running" if tries == 1 else f"running (try {tries})")

    def succeeded(self, st: StageRun) -> None:
        """A stage finished with exit 0."""
        self.board.end(st)
        self._say("ok", st.label, f"{st.duration:.1f}s  attempt {st.attempt}  mlflow {st.mlflow_run_id}")

    def cached(self, st: StageRun) -> None:
        """A stage reused a completed attempt instead of running its notebook."""
        self._say("cache", st.label, f"{st.message}; no notebook ran  attempt {st.attempt}  mlflow {st.mlflow_run_id}")

    def retrying(self, st: StageRun, delay: float, retries: int) -> None:
        """A retryable failure: the stage runs again after ``delay`` seconds."""
        self.board.end(st)
        self._say(
            "retry",
            st.label,
            f"exit {st.exit_code} after {st.duration:.1f}s (attempt {st.attempt}): {st.message}; "
            f"retry {st.tries} of {retries} in {delay:g}s",
        )

    def failed(self, st: StageRun) -> None:
        """A stage failed or was stopped; show why and where its log is."""
        self.board.end(st)
        mark = "KILL" if st.state is StageState.KILLED else "FAIL"
        self._say(mark, st.label, f"exit {st.exit_code} after {st.duration:.1f}s: {st.message}")
        for line in st.detail:  # where it failed: source line, traceback's last lines, executed notebook
            say(f"        | {line}")
        if st.log_path is not None:
            say(f"        log: {st.log_path}")
            if not st.detail:  # no result said where: the end of the stage command's own log
                try:
                    tail = st.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-12:]
                except OSError:
                    tail = []
                for line in tail:
                    say(f"        | {line}")

    def skipped(self, stage: str, cause: str) -> None:
        """A stage will not run because an upstream stage failed."""
        self._say("skip", stage, f"not run: upstream '{cause}' failed")


def summary_table(stages: Iterable[StageRun]) -> str:
    """A plain-text table: stage, status, attempt, tries, duration, MLflow run id."""
    rows = [("stage", "status", "attempt", "tries", "duration", "mlflow run")]
    for st in stages:
        duration = f"{st.duration:.1f}s" if st.tries else "-"
        tries = str(st.tries) if st.tries else "-"
        rows.append((st.name, st.state.value, str(st.attempt or "-"), tries, duration, st.mlflow_run_id or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n" + "\n".join(lines)


def nbops_command() -> str:
    """How to call nbops from the user's shell: ``nbops`` when that is on PATH and is this nbops,
    else the path of the executable running now (``.venv/bin/nbops`` after ``make example``)."""
    here = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    found = shutil.which("nbops")
    if here is None or here.name != "nbops" or (found and Path(found).resolve() == here.resolve()):
        return "nbops"
    try:
        return shlex.quote(str(here.resolve().relative_to(Path.cwd())))
    except ValueError:
        return shlex.quote(str(here))


def finish_report(summary: RunSummary, options: RunOptions, slot_lines: list[str]) -> str:
    """The end of ``nbops run``'s output: the stage table, what the run slots report, how it ended."""
    from nbops.runner.plan import DRIFT_TRIGGER, resume_command

    stages = list(summary.stages.values())
    if not any(s.tries for s in stages) and summary.interrupted:
        return f"\nnbops run: {summary.interrupted} before any stage started; nothing ran."
    lines = [summary_table(stages), *slot_lines]
    if options.trigger == DRIFT_TRIGGER:
        lines.append(f"\nDrift-triggered run: {len(summary.ran)} of {len(stages)} stage(s) re-ran (none reused).")
    if summary.outcome is PipelineOutcome.SUCCEEDED:
        ui = f" See it with: {nbops_command()} ui {shlex.quote(str(options.pipeline_file))}" if options.hints else ""
        return "\n".join([*lines, f"\nRun {summary.run_id} succeeded.{ui}"])
    failed = [s for s in stages if s.state.failed]
    first = failed[0].stage if failed else next(s.stage for s in stages if not s.state.done)
    why = f"was stopped ({summary.interrupted})" if summary.interrupted else "did not finish"
    if not options.hints:
        return "\n".join([*lines, f"\nRun {summary.run_id} {why}."])
    which = "stopped" if summary.interrupted else "failed"
    resume = resume_command(options, summary.run_id, first, nbops_command())
    lines += [f"\nRun {summary.run_id} {why}. Resume from the {which} stage with:", f"  {resume}"]
    if failed and failed[0].attempt and not summary.interrupted:  # it ran: it has cells to show
        lines += _look_back(failed[0], summary.run_id)
    return "\n".join(lines)


def _look_back(st: StageRun, run_id: str) -> list[str]:
    """How to read the failed stage's cells and reopen it where it failed (``nbops logs``, ``nbops debug``)."""
    point = f" --point {st.point.index}" if st.point is not None else ""
    run = shlex.quote(run_id)
    return [
        "Read its cells, or reopen it where it failed with the inputs it had:",
        f"  {nbops_command()} logs {st.stage} --run {run}{point}",
        f"  {nbops_command()} debug {st.stage} --run {run}{point}",
    ]
