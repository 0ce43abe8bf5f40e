"""One exception root for nbops, split by who is at fault.

The split decides the exit code (DESIGN §6) and whether an orchestrator should retry:
input errors are not retried, infrastructure errors are. A notebook's own failure is not an
exception but an outcome (``nbops.status.StageStatus``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from nbops.status import ExitCode


class NbopsError(Exception):
    """Root of every error nbops raises on purpose."""

    exit_code: ExitCode = ExitCode.INFRA

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def retryable(self) -> bool:
        """Whether an orchestrator should try again (read off the exit code)."""
        return self.exit_code.retryable

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type[NbopsError], tuple[str]]:
        return (type(self), (self.message,))


class InputError(NbopsError):
    """Bad input found before execution: spec, notebook JSON, parameters, hashes."""

    exit_code = ExitCode.INPUT


class InfraError(NbopsError):
    """The machinery failed: kernel died, store unreachable, signal. Worth a retry."""

    exit_code = ExitCode.INFRA


def format_problems(header: str, problems: list[str]) -> str:
    """Render every problem of one check in a single report, one per line."""
    lines = [header] + [f"  - {p}" for p in problems]
    return "\n".join(lines)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'X'?"`` naming the choice closest to a mistyped ``word``, or ``""`` when none is close.

    Appended to the clause that names the unknown word: ``f"unknown stage '{s}'{did_you_mean(s, stages)}"``.
    Case is ignored in the comparison (``c`` finds ``C``).
    """
    folded: dict[str, str] = {}
    for choice in choices:
        folded.setdefault(choice.casefold(), choice)
    close = difflib.get_close_matches(word.casefold(), list(folded), n=1)
    return f"; did you mean '{folded[close[0]]}'?" if close else ""


class EvidenceError(NbopsError):
    """Evidence does not match its record (exit 4, as a failed audit): e.g. a model version's files
    differ from what its stage sealed, so it is not served."""

    exit_code = ExitCode.AUDIT


class NothingToDo(NbopsError):
    """Nothing to do, and not a failure (exit 99; Airflow marks the task skipped): e.g. the monitor
    before the first champion exists."""

    exit_code = ExitCode.SKIP
