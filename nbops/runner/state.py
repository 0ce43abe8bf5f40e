"""What the local runner knows of each stage while a run goes on, and of the run when it ends."""

from __future__ import annotations

import contextlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from nbops.stage.process import STOP_GRACE_S, stop
from nbops.stage.result import StageResult
from nbops.status import ExitCode, PipelineOutcome, StageState, StageStatus

if TYPE_CHECKING:
    from nbops.runner.recorder import Recorder
    from nbops.stage.command import Reusable
    from nbops.sweep import Point


@dataclass
class StageRun:
    """Bookkeeping of one stage during a run."""

    name: str
    """Its key among the run's units: the stage, or ``train[3]`` for a point of a swept stage."""
    state: StageState = StageState.PENDING
    outcome: StageStatus | None = None
    """How its last attempt ended, as the stage command reported it."""
    exit_code: int | None = None
    tries: int = 0
    not_before: float = 0.0
    started: float = 0.0
    duration: float = 0.0
    attempt: int | None = None
    mlflow_run_id: str | None = None
    message: str = ""
    detail: tuple[str, ...] = ()
    """Where a failed attempt failed: the source line, the traceback's last lines, the executed notebook."""
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    result_path: Path | None = None
    log_file: IO[bytes] | None = None
    launch: str = ""
    probed: bool = False
    """Whether the runner looked for a completed attempt to reuse."""
    reusable: Reusable | None = None
    """What it found: the attempt to record as ``cached`` instead of starting a stage command."""
    stage: str = ""
    """The stage (``name`` unless the unit is a point)."""
    point: Point | None = None
    """Of a swept stage: the point this unit runs."""
    sweep_pending: bool = False
    """A ``foreach_from`` stage whose points are known once its upstream stage has written them."""

    def __post_init__(self) -> None:
        self.stage = self.stage or self.name

    @property
    def label(self) -> str:
        """How progress lines name it: ``train``, or ``train[3] C=10.0 penalty=l1``."""
        return self.point.label(self.stage) if self.point is not None else self.name

    @property
    def file_key(self) -> str:
        """Its name in log file names (no glob characters): ``train``, ``train.3``."""
        return self.stage if self.point is None else f"{self.stage}.{self.point.index}"

    def read(self, result: StageResult, duration: float) -> None:
        """Take in a stage command's (or an in-process reuse's) result."""
        self.duration = duration
        self.outcome, self.attempt, self.mlflow_run_id = result.status, result.attempt, result.mlflow_run_id
        self.exit_code = result.exit_code
        self.message = self.message or result.message
        self.detail = tuple(result.detail)

    def collect(self, duration: float) -> None:
        """Read the finished stage command's exit code and result file."""
        assert self.process is not None  # noqa: S101 - launched
        if self.log_file:
            self.log_file.close()
        code = self.process.returncode
        result = _read_result(self.result_path)
        if result is not None:
            self.read(result, duration)
        else:  # killed before it could write one
            self.duration = duration
            self.outcome = StageStatus.KILLED if code < 0 else StageStatus.of_exit(code)
            self.message = self.message or f"stage command exited {code} without a result"
        self.exit_code = int(ExitCode.of(code))
        self.process = None

    def cancel_early(self, recorder: Recorder | None) -> None:
        """Tell a command started early that it will not run; it exits having claimed nothing."""
        if recorder is not None:
            recorder.release(self.launch, go=False)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_GRACE_S)
            if self.process.poll() is None:
                stop([self.process], grace=1)
        if self.log_file:
            self.log_file.close()
        for leftover in (self.log_path, self.result_path):
            if leftover is not None:
                leftover.unlink(missing_ok=True)
        self.process = self.log_file = None


@dataclass
class RunSummary:
    """How the run ended."""

    run_id: str
    stages: dict[str, StageRun] = field(default_factory=dict)
    exit_code: int = ExitCode.OK
    parent_run_id: str = ""
    interrupted: str | None = None
    run_date: str = ""
    tracking_uri: str = ""
    experiment_id: str = ""
    outcome: PipelineOutcome | None = None

    @property
    def ran(self) -> list[str]:
        """The stages whose notebook ran in this run (not reused, not skipped)."""
        return [s.name for s in self.stages.values() if s.tries and s.state is not StageState.CACHED]


def _read_result(path: Path | None) -> StageResult | None:
    try:
        return StageResult.from_json(path.read_text(encoding="utf-8")) if path else None
    except (OSError, ValueError, TypeError):
        return None
