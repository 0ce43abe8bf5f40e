"""``nbops logs``: an attempt's cells as text, whole or followed as they finish (DESIGN §18).

The notebook is read from the store itself: locally the attempt's ``output.ipynb`` is saved after
every cell; a stage running in a pod puts its partial notebook in the ``s3://`` store as cells
finish. Following polls it, prints each cell once it has finished, and ends when the notebook
records how the attempt ended (``metadata.nbops.status``), with that outcome's exit code. It
stops with exit 3 when a newer attempt of the same unit starts (the one followed was given up),
or when the notebook has not changed for ``timeout`` seconds without an outcome (the stage
command died without recording one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nbops.attempts.find import NOTEBOOK, AttemptRef, open_named, that_ran
from nbops.attempts.text import NotebookText, parse
from nbops.status import ExitCode, StageStatus

POLL_SECONDS = 1.0
"""How often a followed attempt's notebook is read again."""
GRACE_SECONDS = 60
"""Added to the stage's timeout for the default ``--timeout``: past it an attempt that has not
changed its notebook cannot be running any more."""


@dataclass(frozen=True)
class Followed:
    """How following ended: the exit code, and why it stopped short of the attempt's end, if it did."""

    exit_code: int
    problem: str = ""


def logs_command(
    stage: str,
    *,
    pipeline_file: Path | None = None,
    run: str | None = None,
    number: int | None = None,
    point: int | None = None,
    follow: bool = False,
    timeout: float | None = None,
    write: Callable[[str], None],
) -> Followed:
    """``nbops logs``: print the attempt's cells with ``write``; with ``follow``, as they finish.

    Raises:
        InputError: an unknown stage, run, attempt or point (:func:`nbops.attempts.find.named`).
        InfraError: the store cannot be read, or its notebook is damaged.
    """
    pipeline, ref = open_named(pipeline_file, stage, run, number, point)
    if not follow:
        write(text(ref))
        return Followed(int(ExitCode.OK))
    limit = timeout if timeout is not None else pipeline.stage(stage).timeout + GRACE_SECONDS
    return follow_attempt(ref, write, timeout=limit)


def text(ref: AttemptRef) -> str:
    """The attempt as text: a header line, its code cells, how it ended."""
    head = f"# {ref.describe()}: {ref.location}\n"
    manifest = ref.manifest()
    ran = that_ran(ref)
    if ran != ref:
        head += f"# {manifest.status if manifest else 'cached'}: it reused {ran.describe()}, shown here\n"
    raw = ran.notebook()
    if raw is None:
        return head + f"# no notebook saved yet at {ran.location}/{NOTEBOOK} (the kernel has not run a cell)\n"
    view = NotebookText(parse(raw, f"{ran.location}/{NOTEBOOK}"))
    return head + view.render() + f"# {_ending(view, manifest is not None)}\n"


def follow_attempt(
    ref: AttemptRef,
    write: Callable[[str], None],
    *,
    timeout: float,
    poll: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Followed:
    """Print the attempt's cells as they finish until it ends; its exit code then.

    Raises:
        InfraError: the store cannot be read, or the notebook is damaged.
    """
    manifest = ref.manifest()
    if manifest is not None:  # sealed already (a reuse has no notebook of its own)
        write(text(ref))
        return Followed(int(StageStatus(manifest.status).exit_code))
    write(f"# {ref.describe()}: {ref.location}\n")
    shown, seen, changed = 0, b"", clock()
    while True:
        raw = ref.notebook()
        if raw is not None and raw != seen:
            seen, changed = raw, clock()
            shown, ended = _print_new(ref, raw, shown, write)
            if ended is not None:
                return Followed(ended)
        newer = _given_up(ref)
        if newer:
            raw = ref.notebook()  # its last save may have landed after the read above
            if raw is not None and raw != seen:
                ended = _print_new(ref, raw, shown, write)[1]
                if ended is not None:
                    return Followed(ended)
            return Followed(int(ExitCode.INFRA), newer)
        silent = _silent(ref, clock() - changed, timeout)
        if silent:
            return Followed(int(ExitCode.INFRA), silent)
        sleep(poll)


def _print_new(ref: AttemptRef, raw: bytes, shown: int, write: Callable[[str], None]) -> tuple[int, int | None]:
    """Print the cells of notebook ``raw`` that finished from position ``shown`` on, and the closing
    line once the notebook records its outcome; the position after them, and the exit code of that
    outcome (None while it runs)."""
    view = NotebookText(parse(raw, f"{ref.location}/{NOTEBOOK}"))
    end = view.settled(shown)
    if end > shown:
        write(view.render(shown, end))
    if view.status is None:
        return end, None
    write(f"# {_ending(view, ref.manifest() is not None)}\n")
    return end, int(view.status.exit_code)


def _given_up(ref: AttemptRef) -> str:
    """Why following must stop because a newer attempt of the unit started, or ``""``."""
    newer = [n for n in ref.store.attempt_numbers(ref.pipeline, ref.run_key, ref.unit) if n > ref.number]
    if not newer:
        return ""
    return (
        f"{ref.describe()} ended without recording an outcome in its notebook, and attempt {newer[-1]} has started "
        f"since; follow that one with --attempt {newer[-1]}."
    )


def _silent(ref: AttemptRef, quiet: float, timeout: float) -> str:
    """Why following must stop because the notebook has not changed for ``timeout`` seconds, or ``""``."""
    if quiet <= timeout:
        return ""
    return (
        f"{ref.describe()}: its notebook ({ref.location}/{NOTEBOOK}) has not changed for {quiet:.0f} s and records "
        "no outcome; the stage command has most likely died (see the runner's or the pod's log). "
        "Wait longer with --timeout SECONDS."
    )


def _ending(view: NotebookText, sealed: bool) -> str:
    """The closing line: how the notebook ended, and a success whose attempt was not sealed."""
    summary = view.summary()
    if view.status is not None and view.status.succeeded and not sealed:
        summary += " (the notebook; the attempt has no manifest yet: being recorded, or failed after the notebook)"
    return summary
