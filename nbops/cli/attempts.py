"""The commands that look back at one stage attempt: print its cells, reopen it for debugging."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from nbops.cli.base import maps_errors


def _attempt_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """STAGE and the options that name one of its attempts, as every attempt command takes them."""
    for option in reversed(
        (
            click.argument("stage"),
            click.option("--run", "run", metavar="RUN", help="The run id nbops run printed (default: the newest run)."),
            click.option(
                "--attempt", "number", type=click.IntRange(min=1), metavar="N", help="Attempt number (default: newest)."
            ),
            click.option(
                "--point", type=click.IntRange(min=0), metavar="INDEX", help="The point of a swept stage, by index."
            ),
            click.option(
                "--pipeline",
                "pipeline_file",
                type=click.Path(path_type=Path),
                help="Pipeline file (default: found upward).",
            ),
        )
    ):
        command = option(command)
    return command


@click.command("logs")
@maps_errors
@_attempt_options
@click.option("--follow", "-f", is_flag=True, help="Print cells as they finish until the attempt ends.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="With --follow: give up once the notebook is unchanged this long (default: the stage's timeout + 60 s).",
)
def logs_cmd(
    stage: str,
    run: str | None,
    number: int | None,
    point: int | None,
    pipeline_file: Path | None,
    follow: bool,
    timeout: float | None,
) -> None:
    """Print a stage attempt's cells as text: each code cell's first source line, then its output and
    errors (images as placeholders), the injected-parameters cell and the cell that failed marked.

    The latest attempt of the newest run by default; the store is the pipeline's (local, or s3://
    with NBOPS_ARTIFACT_ROOT). With --follow, a running attempt's cells are printed as they finish
    (locally or in a pod), and the command exits when the attempt ends, with its exit code.

    Exit 0 once printed (with --follow: the attempt's own exit code, 0, 1, 2 or 3); 2 for an unknown
    stage, run, attempt or point, or a swept stage without --point; 3 when the store cannot be read,
    or --follow gave up (a newer attempt started, or the notebook stayed unchanged past --timeout).
    """
    from nbops.attempts.logs import logs_command

    def write(text: str) -> None:
        click.echo(text, nl=False)
        sys.stdout.flush()

    followed = logs_command(
        stage,
        pipeline_file=pipeline_file,
        run=run,
        number=number,
        point=point,
        follow=follow,
        timeout=timeout,
        write=write,
    )
    if followed.problem:
        click.echo(f"nbops: {followed.problem}", err=True)
    sys.exit(followed.exit_code)


@click.command("debug")
@maps_errors
@_attempt_options
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    help="A new or empty directory (default: debug/<stage>-<run>-attempt-<n> beside the pipeline file).",
)
def debug_cmd(
    stage: str,
    run: str | None,
    number: int | None,
    point: int | None,
    pipeline_file: Path | None,
    directory: Path | None,
) -> None:
    """Reopen a stage attempt (typically a failed one) for interactive work: its notebook as executed
    (injected parameters, outputs up to the failure) and the files it carried, in a directory where
    nbops.input_dir() reads exactly the upstream attempts that run consumed and nbops.output_dir() a
    scratch directory inside it. Prints which cell failed and how to open or run it.

    Works for runs made locally or on Airflow/Kubernetes (the s3:// store of NBOPS_ARTIFACT_ROOT).
    Exit 0 once written; 2 for an unknown stage, run, attempt or point, a swept stage without
    --point, a --dir that is not empty, or an upstream attempt gone from the store; 3 when the store
    cannot be read or the directory written.
    """
    from nbops.attempts.debug import debug_command

    made = debug_command(stage, pipeline_file=pipeline_file, run=run, number=number, point=point, directory=directory)
    click.echo(made.message)


COMMANDS = (logs_cmd, debug_cmd)
