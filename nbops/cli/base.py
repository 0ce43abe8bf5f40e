"""What every command shares: the pipeline file argument, error and exit handling, the outcome
an entry function returns."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, ParamSpec, Protocol

import click

from nbops.errors import NbopsError


def _pipeline_file(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    """The default ``pipeline.yaml`` is searched for upward, as the notebook API finds it."""
    from nbops.api import resolve_pipeline_file

    return resolve_pipeline_file(value)


PIPELINE_ARG = click.argument(
    "pipeline_file", required=False, default="pipeline.yaml", type=click.Path(path_type=Path), callback=_pipeline_file
)


PROCESS = {"entry": False}
"""Set by :func:`nbops.cli.entry` when the command line runs as the process's own command, not
in-process (click's test runner, a library caller)."""


def exit_process(code: int) -> NoReturn:
    """Exit with ``code``; as the process's own command, without tearing down every module.

    Once MLflow, SQLAlchemy and nbconvert are loaded, the interpreter's final teardown takes
    about a second (benchmarks/stage_overhead.py), a quarter of a short stage. The output is
    flushed and every exit handler runs first; only the module teardown is skipped.
    """
    if not PROCESS["entry"]:
        sys.exit(code)
    import atexit
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)


def fail(exc: NbopsError) -> NoReturn:
    """``nbops: error: ...`` on stderr, and the error's exit code."""
    click.echo(f"nbops: error: {exc}", err=True)
    sys.exit(exc.exit_code)


P = ParamSpec("P")


def maps_errors(command: Callable[P, None]) -> Callable[P, None]:
    """A command whose :class:`NbopsError` ends it through :func:`fail`."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except NbopsError as exc:
            fail(exc)

    return run


class Outcome(Protocol):
    """What an entry function returns: the text the command prints and its exit code."""

    @property
    def message(self) -> str: ...

    @property
    def exit_code(self) -> int: ...


def finish(outcome: Outcome, *, err: bool = False) -> NoReturn:
    """Print the outcome's message (on stderr with ``err``) and exit with its code."""
    click.echo(outcome.message, err=err)
    sys.exit(outcome.exit_code)


def parse_run_date(text: str | None) -> str | None:
    """``--run-date`` checked (InputError when it is not YYYY-MM-DD); None when not given."""
    from nbops.rundate import parse

    return parse(text, "--run-date") if text is not None else None
