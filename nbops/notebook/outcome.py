"""How an execution ended, and the two ways the stage command stops one.

Kept apart from the engine (which imports Papermill and nbclient) so that the stage
command's signal handling and lifecycle can hold these before any kernel exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from nbops.status import StageStatus


def describe_cell(index: int | None, execution_count: int | None) -> str:
    """``cell 3 (In [4])``: the source notebook's 0-based index and, if it ran, Jupyter's count."""
    if index is None:
        return ""
    return f"cell {index}" + (f" (In [{execution_count}])" if execution_count is not None else "")


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by the stage command's SIGTERM/SIGINT handler.

    A KeyboardInterrupt because asyncio re-raises only KeyboardInterrupt and SystemExit out
    of a running task (any other BaseException would be stored on whichever task happened to
    be running, and the cell would wait forever); no ``except Exception`` swallows it either.
    """

    status: ClassVar[StageStatus] = StageStatus.KILLED
    ename: ClassVar[str] = "Terminated"

    def __init__(self, signal: str = "SIGTERM") -> None:
        super().__init__(signal)
        self.signal = signal
        self.limit: float | None = None

    @property
    def evalue(self) -> str:
        """What the record says about the stop: the signal's name."""
        return self.signal

    def __str__(self) -> str:
        return self.evalue


class StageTimedOut(Terminated):
    """Raised in the main thread by the stage command's timer when the stage timeout runs out."""

    status: ClassVar[StageStatus] = StageStatus.STAGE_TIMED_OUT
    ename: ClassVar[str] = "StageTimeout"

    def __init__(self, limit: float) -> None:
        KeyboardInterrupt.__init__(self, limit)
        self.signal = ""
        self.limit = limit

    @property
    def evalue(self) -> str:
        """The limit that ran out, in seconds."""
        return f"the stage timeout of {self.limit:g} s ran out"


@dataclass
class Outcome:
    """What the stage command needs to know after execution.

    ``cell_index`` is the failing (or stopping) cell's 0-based index in the source notebook,
    None when no cell was running or the cell was Papermill's injected-parameters cell;
    ``skipped_cells`` are source indices too. ``limit`` is the cell or stage timeout, in
    seconds, that ran out.
    """

    status: StageStatus = StageStatus.SUCCEEDED
    cell_index: int | None = None
    execution_count: int | None = None
    ename: str = ""
    evalue: str = ""
    limit: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    skipped_cells: list[int] = field(default_factory=list)
    traceback: tuple[str, ...] = ()
    """The failing cell's traceback as plain text lines (colours removed), when it raised."""

    def where(self, last: int = 4) -> list[str]:
        """Where a failed cell failed, for logs: the source line it stopped at (IPython marks it
        ``---->``) and the last ``last`` lines of its traceback."""
        lines = [line.rstrip() for line in self.traceback if line.strip()]
        marked = [line.strip() for line in lines if line.lstrip().startswith("---->")]
        head = [f"at {marked[-1]}"] if marked else []
        return head + lines[-last:]

    @property
    def cell(self) -> str:
        """How messages name the cell: ``cell 3 (In [4])``."""
        return describe_cell(self.cell_index, self.execution_count)

    @property
    def message(self) -> str:
        """One sentence saying what happened (:meth:`StageStatus.message`)."""
        signal = self.evalue if self.status is StageStatus.KILLED and self.evalue else "SIGTERM"
        return self.status.message(
            cell=self.cell, ename=self.ename, evalue=self.evalue, limit=self.limit, signal=signal
        )

    def fail(self, status: StageStatus, ename: str, evalue: str) -> None:
        """Record a failure outside any cell (the kernel would not start, a store refused)."""
        self.status, self.ename, self.evalue, self.cell_index, self.execution_count = status, ename, evalue, None, None
        self.traceback = ()

    def stopped_by(self, exc: Terminated, index: int | None = None, execution_count: int | None = None) -> None:
        """Record a signal or the stage timeout, unless the notebook had already failed."""
        if not self.status.succeeded:
            return
        self.status, self.ename, self.evalue, self.limit = exc.status, exc.ename, exc.evalue, exc.limit
        self.cell_index, self.execution_count = index, execution_count
