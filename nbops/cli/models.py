"""The commands that look at what the pipeline recorded: audit a model or run, serve a model,
browse the MLflow UI."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from nbops.cli.base import PIPELINE_ARG, maps_errors


@click.command("audit")
@maps_errors
@click.argument("targets", nargs=-1, metavar="[MODEL] [PIPELINE_FILE]")
@click.option("--run", "run_id", help="Audit a pipeline run (its nbops run id) instead of a model version.")
@click.option(
    "--pipeline", "pipeline_option", type=click.Path(path_type=Path), help="Pipeline file (default: found upward)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (schema nbops.audit/1).")
@click.option(
    "--html", "html_file", type=click.Path(path_type=Path), help="Also write a self-contained HTML page here."
)
def audit_cmd(
    targets: tuple[str, ...], run_id: str | None, pipeline_option: Path | None, as_json: bool, html_file: Path | None
) -> None:
    """Walk a model version (NAME/VERSION, NAME@ALIAS, models:/...) or a pipeline run back to
    the notebooks, parameters, data and code that made it, and verify every hash.

    nbops audit MODEL [PIPELINE_FILE]  |  nbops audit --run RUN_ID [PIPELINE_FILE]

    Exit 0 when every check passed, 4 when a hash does not match or a file is missing,
    2 for an unknown model or run, 3 when a store cannot be reached.
    """
    from nbops.audit import audit_command

    report = audit_command(targets, run_id=run_id, pipeline_file=pipeline_option, html_file=html_file)
    click.echo((report.to_json() if as_json else report.to_text()).rstrip("\n"))
    if html_file is not None:
        click.echo(f"nbops audit: wrote {html_file}", err=True)
    sys.exit(report.exit_code)


@click.command("verify-model")
@maps_errors
@click.argument("model")
@click.argument("pipeline_file", required=False, type=click.Path(path_type=Path))
@click.option(
    "--to", "to", type=click.Path(path_type=Path), help="Copy the checked files into this new or empty directory."
)
def verify_model_cmd(model: str, pipeline_file: Path | None, to: Path | None) -> None:
    """Check a registered model version's files against what its stage sealed, and its signature
    when NBOPS_VERIFY_KEY names the public key; with --to, copy the checked files there (a model
    server's init container serves exactly them). The tracking store is $MLFLOW_TRACKING_URI, else
    the pipeline file's. Exit 0 when they match, 4 naming the version and the file when they do
    not, 2 for an unknown model or a non-empty --to, 3 when a store cannot be read.
    """
    from nbops.serve import verify_model

    click.echo(verify_model(model, to, pipeline_file))


@click.command("serve")
@maps_errors
@click.argument("targets", nargs=-1, metavar="[MODEL] [PIPELINE_FILE]")
@click.option("--port", type=int, default=5001, show_default=True, help="Port on 127.0.0.1.")
def serve_cmd(targets: tuple[str, ...], port: int) -> None:
    """Serve a registered model with MLflow's scoring server on 127.0.0.1 (POST /invocations).

    MODEL is NAME/VERSION, NAME@ALIAS or models:/...; default: the champion of the pipeline's
    `retrain.model`. An alias is resolved to its version when the server starts, so after the
    gate moves `champion`, restart it to serve the new one. Prints the address once the model
    answers; Ctrl-C or SIGTERM stops it. Exit 0 once stopped that way, 2 for an unknown model,
    alias or version or a taken port, 3 when the store cannot be read or the server fails.
    """
    from nbops.serve import serve_command

    try:
        sys.exit(serve_command(targets, port))
    except KeyboardInterrupt:
        sys.exit(0)


@click.command("ui")
@maps_errors
@PIPELINE_ARG
@click.option("--port", type=int, default=5000, show_default=True, help="Port on 127.0.0.1.")
def ui_cmd(pipeline_file: Path, port: int) -> None:
    """Serve the MLflow UI on 127.0.0.1 for this pipeline's store.

    Prints the address once the server answers; Ctrl-C or SIGTERM stops the server and every
    process it started. Exit 0 once stopped that way, 2 when the port is taken (choose another
    with --port), 3 when the server fails or does not answer within 180 s.
    """
    from nbops.ui import serve

    try:
        sys.exit(serve(pipeline_file, port))
    except KeyboardInterrupt:
        sys.exit(0)


COMMANDS = (audit_cmd, verify_model_cmd, serve_cmd, ui_cmd)
