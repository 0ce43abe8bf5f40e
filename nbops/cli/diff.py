"""``nbops diff``: two runs of a pipeline compared stage by stage."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from nbops.cli.base import maps_errors


@click.command("diff")
@maps_errors
@click.argument("run_a")
@click.argument("run_b")
@click.option("--stage", help="Compare this stage only (or one point of a sweep, STAGE/point-ID).")
@click.option(
    "--pipeline", "pipeline_file", type=click.Path(path_type=Path), help="Pipeline file (default: found upward)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (schema nbops.diff/1).")
@click.option(
    "--html",
    "html_file",
    type=click.Path(path_type=Path),
    help="Also write a self-contained HTML page here (a new file, or a page nbops diff wrote before).",
)
def diff_cmd(
    run_a: str, run_b: str, stage: str | None, pipeline_file: Path | None, as_json: bool, html_file: Path | None
) -> None:
    """Compare two runs (run ids as nbops run printed them) stage by stage: parameters and where
    each value came from, metrics with deltas, the data each stage read, notebook source and
    executed outputs cell by cell, carried files, environment, commit and outcome. A cached stage
    is followed to the attempt that ran it.

    Exit 0 when nothing differs, 1 when something does, 2 for an unknown run or stage or a bad
    pipeline file, 3 when the store cannot be read.
    """
    from nbops.api import PIPELINE_FILE, resolve_pipeline_file
    from nbops.attempts.diff import diff_runs
    from nbops.attempts.diff_html import write

    file = pipeline_file if pipeline_file is not None else resolve_pipeline_file(Path(PIPELINE_FILE))
    result = diff_runs(file, run_a, run_b, stage)
    if html_file is not None:
        write(html_file, result.to_html())
        click.echo(f"nbops diff: wrote {html_file}", err=True)
    click.echo((result.to_json() if as_json else result.to_text()).rstrip("\n"))
    sys.exit(result.exit_code)


COMMANDS = (diff_cmd,)
