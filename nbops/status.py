"""Outcomes as types: exit codes, stage attempts, the runner's view of a stage, pipeline runs.

:class:`ExitCode` owns DESIGN §6's table; :class:`StageStatus` owns, for every way a stage
attempt can end, its exit code, its MLflow run status, whether an orchestrator retries it
and the sentence that explains it; :class:`StageState` is the local runner's view of a stage
during a run; :class:`PipelineOutcome` is how a pipeline run ended, on every backend;
:class:`RunStatus` spells MLflow's run statuses, here and nowhere else. The engine, the stage
command, the local runner and the Airflow operator all read these; nothing else maps outcomes
to numbers or strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum, IntEnum, StrEnum


class ExitCode(IntEnum):
    """Exit codes of every nbops command (DESIGN §6)."""

    OK = 0
    """Success; also ``sys.exit()``/``sys.exit(0)`` in a cell (the stage stopped early)."""
    NOTEBOOK = 1
    """The notebook's own code failed: a cell raised or timed out, the stage timed out."""
    INPUT = 2
    """Bad input found before execution: spec, notebook JSON, parameters, hashes."""
    INFRA = 3
    """Infrastructure failure: kernel died or killed, store unreachable, signal."""
    AUDIT = 4
    """``nbops audit``: evidence does not match its record."""
    SKIP = 99
    """Nothing to do, and not a failure: the drift trigger does not hold, the monitor has no
    champion to compare with yet, a gate awaits no approval. Airflow marks the task skipped."""

    @property
    def retryable(self) -> bool:
        """Whether an orchestrator should try again: only infrastructure failures."""
        return self is ExitCode.INFRA

    @classmethod
    def of(cls, code: int) -> ExitCode:
        """The exit code of a finished process; death by a signal (negative) is infrastructure."""
        try:
            return cls(code)
        except ValueError:
            return cls.INFRA


class StageStatus(Enum):
    """How one stage attempt ended. The value is what records and results say."""

    SUCCEEDED = "succeeded"
    STOPPED = "stopped"
    FAILED = "failed"
    CELL_TIMED_OUT = "cell_timed_out"
    STAGE_TIMED_OUT = "stage_timed_out"
    KERNEL_DIED = "kernel_died"
    KILLED = "killed"
    INPUT_ERROR = "input_error"
    INFRA_FAILED = "infra_failed"
    UPLOAD_FAILED = "upload_failed"
    SEAL_FAILED = "seal_failed"
    CACHED = "cached"
    """Not executed: a completed attempt with the same key was reused (DESIGN §13)."""
    SKIPPED = "skipped"
    """Nothing to do (the monitor before the first champion): nothing claimed, not a failure."""

    @property
    def exit_code(self) -> ExitCode:
        """The stage command's exit code for this outcome."""
        return _EXIT[self]

    @property
    def mlflow_status(self) -> RunStatus:
        """The terminal status of the attempt's MLflow run."""
        if self is StageStatus.KILLED:
            return RunStatus.KILLED
        return RunStatus.FINISHED if self.succeeded else RunStatus.FAILED

    @classmethod
    def of_exit(cls, code: int) -> StageStatus:
        """What a stage command's exit code says of an attempt that left no result behind."""
        return {
            ExitCode.OK: cls.SUCCEEDED,
            ExitCode.NOTEBOOK: cls.FAILED,
            ExitCode.INPUT: cls.INPUT_ERROR,
        }.get(ExitCode.of(code), cls.INFRA_FAILED)

    @property
    def succeeded(self) -> bool:
        """Whether the attempt counts as done (and gets a manifest)."""
        return self.exit_code is ExitCode.OK

    @property
    def retryable(self) -> bool:
        """Whether ``nbops run`` and Airflow try the stage again."""
        return self.exit_code.retryable

    def message(
        self,
        *,
        cell: str = "",
        ename: str = "",
        evalue: str = "",
        limit: float | None = None,
        signal: str = "SIGTERM",
    ) -> str:
        """One sentence saying what happened; ``cell`` names the cell (``cell 3 [4]``)."""
        where = cell or "no cell"
        return _MESSAGE[self].format(cell=where, ename=ename, evalue=evalue, limit=limit, signal=signal)


_EXIT = {
    StageStatus.SUCCEEDED: ExitCode.OK,
    StageStatus.STOPPED: ExitCode.OK,
    StageStatus.FAILED: ExitCode.NOTEBOOK,
    StageStatus.CELL_TIMED_OUT: ExitCode.NOTEBOOK,
    StageStatus.STAGE_TIMED_OUT: ExitCode.NOTEBOOK,
    StageStatus.KERNEL_DIED: ExitCode.INFRA,
    StageStatus.KILLED: ExitCode.INFRA,
    StageStatus.INPUT_ERROR: ExitCode.INPUT,
    StageStatus.INFRA_FAILED: ExitCode.INFRA,
    StageStatus.UPLOAD_FAILED: ExitCode.INFRA,
    StageStatus.SEAL_FAILED: ExitCode.INFRA,
    StageStatus.CACHED: ExitCode.OK,
    StageStatus.SKIPPED: ExitCode.SKIP,
}

_MESSAGE = {
    StageStatus.SUCCEEDED: "succeeded",
    StageStatus.STOPPED: "stopped early by sys.exit(0) in {cell}",
    StageStatus.FAILED: "{cell} raised {ename}: {evalue}",
    StageStatus.CELL_TIMED_OUT: "{cell} exceeded the cell timeout of {limit} s",
    StageStatus.STAGE_TIMED_OUT: "the stage timeout of {limit} s ran out while {cell} ran; partial notebook archived",
    StageStatus.KERNEL_DIED: "the kernel died while {cell} ran",
    StageStatus.KILLED: "terminated ({signal}) while {cell} ran; partial notebook archived",
    StageStatus.INPUT_ERROR: "{evalue}",
    StageStatus.INFRA_FAILED: "infrastructure failure: {evalue}",
    StageStatus.UPLOAD_FAILED: "the artifact store did not take the attempt's files: {evalue}",
    StageStatus.SEAL_FAILED: "the artifact store did not take the manifest: {evalue}",
    StageStatus.CACHED: "reused {evalue}",
    StageStatus.SKIPPED: "{evalue}",
}


class RunStatus(StrEnum):
    """MLflow's run statuses, as its API spells them."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


class StageState(StrEnum):
    """The local runner's view of one stage during a run."""

    PENDING = "pending"
    EARLY = "early"
    """Its stage command is started and waits to be released (an upstream stage still runs)."""
    WAITING = "waiting"
    """Failed for a retryable reason; runs again after the retry delay."""
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    CACHED = "cached"
    """A completed attempt was reused (no stage command ran)."""
    FAILED = "failed"
    KILLED = "killed"
    SKIPPED = "skipped"
    """Not run: an upstream stage failed or the run was stopped."""

    @property
    def done(self) -> bool:
        """Whether the stages after it may start."""
        return self in (StageState.SUCCEEDED, StageState.CACHED)

    @property
    def active(self) -> bool:
        """Whether the run still has to wait for it."""
        return self in (StageState.PENDING, StageState.EARLY, StageState.WAITING, StageState.RUNNING)

    @property
    def failed(self) -> bool:
        """Whether it makes the run fail."""
        return self in (StageState.FAILED, StageState.KILLED)


class PipelineOutcome(StrEnum):
    """How a pipeline run ended: the parent MLflow run's ``nbops.status`` and its run status."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    KILLED = "killed"
    SKIPPED = "skipped"
    """Nothing to do: a monitor run before the first champion (its stage exited 99)."""

    @property
    def mlflow_status(self) -> RunStatus:
        """The parent run's terminal status."""
        return {
            PipelineOutcome.SUCCEEDED: RunStatus.FINISHED,
            PipelineOutcome.SKIPPED: RunStatus.FINISHED,
            PipelineOutcome.FAILED: RunStatus.FAILED,
            PipelineOutcome.KILLED: RunStatus.KILLED,
        }[self]

    @classmethod
    def of(cls, stages: Iterable[str | None], *, stopped: bool = False) -> PipelineOutcome:
        """The outcome from each stage's last recorded status (None or anything else: not run).

        Succeeded when every stage counts as done (``succeeded``, ``stopped``, ``cached``); killed
        when the run was stopped or a stage was killed; failed otherwise. Both backends decide here.
        """
        outcomes = list(stages)
        if stopped:
            return cls.KILLED
        if all(_done(o) for o in outcomes):
            return cls.SUCCEEDED
        if any(o == StageStatus.KILLED.value for o in outcomes):
            return cls.KILLED
        return cls.FAILED


def _done(status: str | None) -> bool:
    try:
        return StageStatus(status).succeeded
    except ValueError:  # `not run`, or what MLflow says of a run nbops never tagged
        return False


__all__ = ["ExitCode", "PipelineOutcome", "RunStatus", "StageState", "StageStatus"]
