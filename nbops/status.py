"""Outcomes as types: the exit codes of every nbops command and the outcome of a stage attempt.

:class:`ExitCode` owns DESIGN §6's table; :class:`StageStatus` owns, for every way a stage
attempt can end, its exit code, its MLflow run status, whether an orchestrator retries it
and the sentence that explains it. The engine, the stage command, the local runner and the
Airflow operator all read these two; nothing else maps outcomes to numbers.
"""

from __future__ import annotations

from enum import Enum, IntEnum


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

    @property
    def exit_code(self) -> ExitCode:
        """The stage command's exit code for this outcome."""
        return _EXIT[self]

    @property
    def mlflow_status(self) -> str:
        """The terminal status of the attempt's MLflow run."""
        if self is StageStatus.KILLED:
            return "KILLED"
        return "FINISHED" if self.succeeded else "FAILED"

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
}

__all__ = ["ExitCode", "StageStatus"]
