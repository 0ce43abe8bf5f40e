"""One exception root for nbops, split by who is at fault.

The split decides the exit code (DESIGN §6) and whether an orchestrator should retry:
input errors and notebook errors are not retried, infrastructure errors are.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_NOTEBOOK = 1
EXIT_INPUT = 2
EXIT_INFRA = 3


class NbopsError(Exception):
    """Root of every error nbops raises on purpose."""

    exit_code: int = EXIT_INFRA
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type[NbopsError], tuple[str]]:
        return (type(self), (self.message,))


class InputError(NbopsError):
    """Bad input found before execution: spec, notebook JSON, parameters, hashes."""

    exit_code = EXIT_INPUT


class InfraError(NbopsError):
    """The machinery failed: kernel died, store unreachable, signal. Worth a retry."""

    exit_code = EXIT_INFRA
    retryable = True


class NotebookError(NbopsError):
    """The notebook's own code failed: a cell raised or timed out.

    Carries the failed cell's index and the error's name so the record can name them.
    """

    exit_code = EXIT_NOTEBOOK

    def __init__(self, message: str, cell_index: int | None = None, ename: str = "") -> None:
        super().__init__(message)
        self.cell_index = cell_index
        self.ename = ename

    def __reduce__(self) -> tuple[type[NotebookError], tuple[str, int | None, str]]:  # type: ignore[override]
        return (type(self), (self.message, self.cell_index, self.ename))


class KernelDiedError(InfraError):
    """The kernel process vanished while a cell ran (killed, out of memory, os._exit)."""

    def __init__(self, message: str, cell_index: int | None = None) -> None:
        super().__init__(message)
        self.cell_index = cell_index

    def __reduce__(self) -> tuple[type[KernelDiedError], tuple[str, int | None]]:  # type: ignore[override]
        return (type(self), (self.message, self.cell_index))


def format_problems(header: str, problems: list[str]) -> str:
    """Render every problem of one check in a single report, one per line."""
    lines = [header] + [f"  - {p}" for p in problems]
    return "\n".join(lines)
