"""The commands of a pipeline's life: scaffold, lint, run and test it locally, promote it, and
the two every DAG runs (``exec-stage`` for each stage, ``close-run`` last)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from nbops.cli.base import PIPELINE_ARG, exit_process, finish, maps_errors, parse_run_date
from nbops.status import ExitCode


@click.command("init")
@maps_errors
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.option("--name", help="Pipeline name (default: from the directory's name).")
def init_cmd(directory: Path, name: str | None) -> None:
    """Scaffold a project in DIRECTORY (default: here): pipeline.yaml with two stages, their
    notebooks, .gitignore, requirements.txt, a runner Dockerfile and dags/. Never overwrites:
    exit 2, nothing written, when any of those files exists."""
    from nbops.scaffold import init_project

    click.echo(init_project(directory, name).describe())


@click.command("lint")
@PIPELINE_ARG
def lint_cmd(pipeline_file: Path) -> None:
    """Check the spec and every stage notebook statically; exit 2 listing every problem."""
    from nbops.lint import lint

    problems = lint(pipeline_file)
    if problems:
        click.echo(f"nbops lint: {len(problems)} problem(s) in {pipeline_file}:", err=True)
        for problem in problems:
            click.echo(f"\n{problem}", err=True)
        sys.exit(ExitCode.INPUT)
    click.echo(f"nbops lint: {pipeline_file} is clean.")


@click.command("run")
@maps_errors
@PIPELINE_ARG
@click.option("--stage", "stages", multiple=True, help="Run only this stage (repeatable).")
@click.option("--from", "from_stage", help="Run this stage and everything downstream of it.")
@click.option("-p", "--param", "params", multiple=True, help="Override: STAGE.NAME=VALUE (typed by the notebook).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Stages run at once (default: cores).")
@click.option("--run-id", help="Run id; with --stage/--from it defaults to the latest run (resume).")
@click.option(
    "--run-date",
    metavar="YYYY-MM-DD",
    help="What ${run_date} in the spec's parameters stands for (default: a resumed run's own, else today, UTC).",
)
@click.option(
    "--force",
    "force",
    multiple=True,
    is_flag=False,
    flag_value="*",
    metavar="[STAGE]",
    help="Run even what could reuse a completed attempt: every stage, or (repeatable) STAGE and its descendants.",
)
@click.option(
    "--retry-delay",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Seconds before the first retry of a stage that failed for a retryable reason (exit 3); doubled each time.",
)
@click.option(
    "--progress",
    type=click.Choice(["auto", "live", "plain", "off"]),
    default="auto",
    show_default=True,
    help="Each running stage's cell, time and last printed line: redrawn in place (live), "
    "a line per cell (plain), or not at all; auto is live on a terminal, else plain.",
)
def run_cmd(
    pipeline_file: Path,
    stages: tuple[str, ...],
    from_stage: str | None,
    params: tuple[str, ...],
    jobs: int | None,
    run_id: str | None,
    run_date: str | None,
    force: tuple[str, ...],
    retry_delay: float,
    progress: str,
) -> None:
    """Run the pipeline locally, one subprocess per stage, independent stages in parallel.

    With a `retrain:` block, the retraining gate runs once its stage succeeds and its decision
    is printed with the summary. SIGTERM or Ctrl-C stops every running stage (each archives
    and records its partial notebook), closes the run's MLflow record as KILLED and exits 3.
    """
    from nbops.runs import RunOptions
    from nbops.runs import run as run_pipeline

    options = RunOptions(
        run_date=parse_run_date(run_date),
        force=force,
        pipeline_file=pipeline_file,
        stages=stages,
        from_stage=from_stage,
        params=params,
        jobs=jobs,
        run_id=run_id,
        retry_delay=retry_delay,
        progress=progress,
    )
    try:
        summary = run_pipeline(options)
    except KeyboardInterrupt:  # only before the runner's own handling is in place
        click.echo("nbops run: interrupted before any stage started; nothing ran.", err=True)
        sys.exit(ExitCode.INFRA)
    exit_process(summary.exit_code)


@click.command("test")
@maps_errors
@PIPELINE_ARG
@click.option("--nbval", is_flag=True, help="Also compare executed outputs with those stored in the notebooks.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Stages run at once (default: cores).")
@click.option("--all-points", is_flag=True, help="Run every point of a swept stage (default: its first point).")
def test_cmd(pipeline_file: Path, nbval: bool, jobs: int | None, all_points: bool) -> None:
    """Lint, then run the whole pipeline with each stage's `test_parameters` in a throwaway store
    and experiment: no production run, registry version, alias move or alert; a swept stage runs
    its first point only unless --all-points. With a monitor, its notebook then runs once
    against the test run's champion (--dry-run).

    Exit 0 when everything passed; 1 when a notebook failed (naming the stage and the cell) or,
    with --nbval, an output differs; 2 for lint problems; 3 infrastructure. On a failure the
    throwaway store is kept and its place printed.
    """
    from nbops.testrun import TestOptions, test_command

    outcome = test_command(TestOptions(pipeline_file=pipeline_file, nbval=nbval, jobs=jobs, all_points=all_points))
    click.echo(outcome.message, err=True)
    exit_process(outcome.exit_code)


@click.command("exec-stage")
@click.option("--pipeline", "pipeline_file", type=click.Path(path_type=Path), help="Pipeline file (working tree).")
@click.option("--promoted", metavar="LOCK_SHA256", help="Run the promoted pipeline whose lock has this sha256.")
@click.option("--stage", required=True, help="Stage to execute.")
@click.option("--run-id", required=True, help="Pipeline run this attempt belongs to.")
@click.option("--params-json", default="{}", help="Parameter overrides as a JSON object.")
@click.option("--point", type=int, help="Of a swept stage: the index of the point to run (0 is the first).")
@click.option("--result-file", type=click.Path(path_type=Path), hidden=True, help="Write the result here as JSON.")
@click.option("--force", is_flag=True, help="Run the notebook even when a completed attempt could be reused.")
def exec_stage_cmd(
    pipeline_file: Path | None,
    promoted: str | None,
    stage: str,
    run_id: str,
    params_json: str,
    point: int | None,
    result_file: Path | None,
    force: bool,
) -> None:
    """Execute one stage of one pipeline run (what every backend runs).

    Exactly one of --pipeline (notebooks from the working tree) and --promoted (notebooks
    from the artifact store, verified by hash) names what to run.
    """
    from nbops.plugins import stage_command

    result = stage_command(
        pipeline_file, promoted, stage, run_id, params_json, point=point, force=force, result_file=result_file
    )
    exit_process(result.exit_code)


@click.command("promote")
@maps_errors
@PIPELINE_ARG
@click.option(
    "--dags-dir", type=click.Path(path_type=Path), help="Where DAGs go (default: dags/ beside the pipeline file)."
)
def promote_cmd(pipeline_file: Path, dags_dir: Path | None) -> None:
    """Check the pipeline, freeze its notebooks and write its Airflow DAG."""
    from nbops.promote import promote

    click.echo(promote(pipeline_file, dags_dir).describe())


@click.command("close-run")
@maps_errors
@click.option("--promoted", metavar="LOCK_SHA256", required=True, help="The promoted pipeline's lock sha256.")
@click.option("--run-id", required=True, help="The pipeline run to close.")
@click.option("--airflow-json", default="{}", help="The DAG run: dag_id, run_id, logical_date, conf (JSON).")
def close_run_cmd(promoted: str, run_id: str, airflow_json: str) -> None:
    """Archive and close the MLflow record of a pipeline run (the DAG's last task).

    Closes the parent run FINISHED, FAILED or KILLED as its stages ended; exits 0 whatever
    they did, 3 when the record cannot be written.
    """
    from nbops.tasks import close_run_command

    finish(close_run_command(promoted, run_id, airflow_json), err=True)


@click.command("sweep-points")
@maps_errors
@click.option("--promoted", metavar="LOCK_SHA256", required=True, help="The promoted pipeline's lock sha256.")
@click.option("--stage", required=True, help="The stage swept with foreach_from.")
@click.option("--run-id", required=True, help="The pipeline run whose upstream attempt wrote the list.")
@click.option("--pod-name", required=True, help="The stage pod's name; each point's is NAME-<index>.")
def sweep_points_cmd(promoted: str, stage: str, run_id: str, pod_name: str) -> None:
    """Read a foreach_from sweep's parameter sets and print one pod name per point as a JSON list
    (the DAG's mapped task expands over it). Exit 2 when the list is missing or refused."""
    from nbops.tasks import sweep_points_command

    points = sweep_points_command(promoted, stage, run_id, pod_name)
    click.echo(points.message, err=True)
    click.echo(json.dumps(points.names))


COMMANDS = (init_cmd, lint_cmd, run_cmd, test_cmd, exec_stage_cmd, promote_cmd, close_run_cmd, sweep_points_cmd)
