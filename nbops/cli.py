"""The ``nbops`` command line: parse, build a request, call one library function, map errors.

Exit codes (``nbops.status.ExitCode``): 0 success, 1 the notebook's own code failed, 2 bad
input found before execution, 3 infrastructure failure or a signal, 4 an audit found a mismatch.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import click

from nbops.errors import NbopsError
from nbops.status import ExitCode


def _pipeline_file(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    """The default ``pipeline.yaml`` is searched for upward, as the notebook API finds it."""
    from nbops.api import resolve_pipeline_file

    return resolve_pipeline_file(value)


PIPELINE_ARG = click.argument(
    "pipeline_file", required=False, default="pipeline.yaml", type=click.Path(path_type=Path), callback=_pipeline_file
)


_PROCESS = {"entry": False}
"""Set by :func:`entry` when this module runs as the process's own command, not in-process
(click's test runner, a library caller)."""


def entry() -> None:
    """The ``nbops`` executable and ``python -m nbops``."""
    _PROCESS["entry"] = True
    main()


def _exit_process(code: int) -> NoReturn:
    """Exit with ``code``; as the process's own command, without tearing down every module.

    Once MLflow, SQLAlchemy and nbconvert are loaded, the interpreter's final teardown takes
    about a second (benchmarks/stage_overhead.py), a quarter of a short stage. The output is
    flushed and every exit handler runs first; only the module teardown is skipped.
    """
    if not _PROCESS["entry"]:
        sys.exit(code)
    import atexit
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)


def _fail(exc: NbopsError) -> NoReturn:
    click.echo(f"nbops: error: {exc}", err=True)
    sys.exit(exc.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nbops")
def main() -> None:
    """Take tagged Jupyter notebooks to production."""


@main.command("exec-stage")
@click.option("--pipeline", "pipeline_file", type=click.Path(path_type=Path), help="Pipeline file (working tree).")
@click.option("--promoted", metavar="LOCK_SHA256", help="Run the promoted pipeline whose lock has this sha256.")
@click.option("--stage", required=True, help="Stage to execute.")
@click.option("--run-id", required=True, help="Pipeline run this attempt belongs to.")
@click.option("--params-json", default="{}", help="Parameter overrides as a JSON object.")
@click.option("--result-file", type=click.Path(path_type=Path), hidden=True, help="Write the result here as JSON.")
@click.option("--force", is_flag=True, help="Run the notebook even when a completed attempt could be reused.")
def exec_stage_cmd(
    pipeline_file: Path | None,
    promoted: str | None,
    stage: str,
    run_id: str,
    params_json: str,
    result_file: Path | None,
    force: bool,
) -> None:
    """Execute one stage of one pipeline run (what every backend runs).

    Exactly one of --pipeline (notebooks from the working tree) and --promoted (notebooks
    from the artifact store, verified by hash) names what to run.
    """
    from nbops.errors import InputError
    from nbops.stage.command import StageRequest, exec_stage, log, result_of_error
    from nbops.status import StageStatus

    started = time.monotonic()
    request = StageRequest(pipeline_file=pipeline_file, stage=stage, run_id=run_id, promoted=promoted)
    try:
        if (pipeline_file is None) == (promoted is None):
            raise InputError("exec-stage needs exactly one of --pipeline FILE and --promoted LOCK_SHA256.")
        params: Any = json.loads(params_json)
        if not isinstance(params, dict):
            raise InputError(f"--params-json: expected a JSON object, got {type(params).__name__}.")
        request = StageRequest(
            pipeline_file=pipeline_file, stage=stage, run_id=run_id, params=params, promoted=promoted, force=force
        )
        result = exec_stage(request)
    except json.JSONDecodeError as exc:
        result = result_of_error(request, InputError(f"--params-json: not valid JSON ({exc.msg})."), started)
    except NbopsError as exc:
        result = result_of_error(request, exc, started)
    except KeyboardInterrupt:  # a signal outside the attempt's own handling
        result = replace(result_of_error(request, NbopsError("interrupted"), started), status=StageStatus.KILLED)
    if result_file is not None:
        from nbops.storage.atomic import write_atomic

        write_atomic(result_file, result.to_json().encode("utf-8"))
    level = "done" if result.exit_code == 0 else "error"
    log(f"{level}: stage '{result.stage}' {result.message} (exit {result.exit_code})")
    _exit_process(result.exit_code)


@main.command("run")
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
) -> None:
    """Run the pipeline locally, one subprocess per stage, independent stages in parallel.

    With a `retrain:` block, the retraining gate runs once its stage succeeds and its decision
    is printed with the summary. SIGTERM or Ctrl-C stops every running stage (each archives
    and records its partial notebook), closes the run's MLflow record as KILLED and exits 3.
    """
    from nbops.runner.local import RunOptions, run_pipeline

    try:
        run_date = _run_date(run_date)
    except NbopsError as exc:
        _fail(exc)
    options = RunOptions(
        run_date=run_date,
        force=force,
        pipeline_file=pipeline_file,
        stages=stages,
        from_stage=from_stage,
        params=params,
        jobs=jobs,
        run_id=run_id,
        retry_delay=retry_delay,
    )
    try:
        summary = run_pipeline(options)
    except NbopsError as exc:
        _fail(exc)
    except KeyboardInterrupt:  # only before the runner's own handling is in place
        click.echo("nbops run: interrupted before any stage started; nothing ran.", err=True)
        sys.exit(ExitCode.INFRA)
    _exit_process(summary.exit_code)


def _run_date(text: str | None) -> str | None:
    from nbops.rundate import parse

    return parse(text, "--run-date") if text is not None else None


@main.command("gate")
@PIPELINE_ARG
@click.option("--run-id", required=True, help="The pipeline run whose challenger is judged.")
@click.option("--promoted", metavar="LOCK_SHA256", help="The promoted pipeline (the DAG's retrain_gate task).")
def gate_cmd(pipeline_file: Path, run_id: str, promoted: str | None) -> None:
    """Run the retraining gate (`retrain:`) for a pipeline run: challenger vs champion.

    Exit 0 when it decided (promoted, kept, or awaiting approval), 1 when it could not decide
    (the stage registered no version, a metric is missing), 2 bad input, 3 the tracking store
    failed. `nbops run` runs the gate itself; this command re-runs it or runs it in a DAG. In
    a DAG (--promoted) with `approval: manual`, a decision that awaits no approval exits 99,
    which skips the approval task.
    """
    from nbops.monitor import NOT_TRIGGERED
    from nbops.retrain import describe, load_target, run_gate
    from nbops.tracking.gate import Decision
    from nbops.tracking.store import open_client

    try:
        pipeline, _, uri = load_target(None if promoted else pipeline_file, promoted)
        result = run_gate(open_client(uri), pipeline, uri, run_id)
    except NbopsError as exc:
        _fail(exc)
    click.echo(describe(result))
    if result.failed:
        sys.exit(ExitCode.NOTEBOOK)
    manual = pipeline.spec.retrain is not None and pipeline.spec.retrain.approval == "manual"
    if promoted and manual and result.decision is not Decision.AWAITING_APPROVAL:
        click.echo("nbops gate: nothing awaits approval; the approval task is skipped.")
        sys.exit(NOT_TRIGGERED)
    sys.exit(ExitCode.OK)


@main.command("approve")
@PIPELINE_ARG
@click.option("--run-id", help="The pipeline run whose decision is approved (default: the newest awaiting one).")
@click.option("--reject", is_flag=True, help="Refuse the challenger: champion stays, the refusal is recorded.")
@click.option("--promoted", metavar="LOCK_SHA256", help="The promoted pipeline (the DAG's promote_champion task).")
def approve_cmd(pipeline_file: Path, run_id: str | None, reject: bool, promoted: str | None) -> None:
    """Approve (or --reject) a gate decision that awaits approval (`approval: manual`): move
    `champion` to the challenger and record who approved.

    Exit 0 when done, 2 when nothing awaits approval there or the champion moved since the
    decision, 3 when the tracking store fails. In a DAG (--promoted, after Airflow's approval)
    a run whose gate kept the champion is reported and exits 0.
    """
    from nbops.errors import InputError
    from nbops.retrain import applied_approval, approve, describe, load_target
    from nbops.tracking.store import open_client

    try:
        pipeline, _, uri = load_target(None if promoted else pipeline_file, promoted)
        client = open_client(uri)
        if promoted:
            if not run_id or reject:
                raise InputError("--promoted needs --run-id and takes no --reject (Airflow's approval task rejects).")
            result = applied_approval(client, pipeline, uri, run_id)
        else:
            result = approve(client, pipeline, uri, run_id, reject=reject)
    except NbopsError as exc:
        _fail(exc)
    click.echo(
        describe(result)
        if result
        else f"nbops approve: run {run_id}: nothing awaits approval (the gate kept the champion)."
    )


@main.command("monitor")
@PIPELINE_ARG
@click.option("-p", "--param", "params", multiple=True, help="Override: monitor.NAME=VALUE.")
@click.option("--run-date", metavar="YYYY-MM-DD", help="The date of the data to check (default: today, UTC).")
@click.option("--dry-run", is_flag=True, help="Only report whether the trigger holds; start no retraining run.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Stages run at once when retraining.")
def monitor_cmd(
    pipeline_file: Path, params: tuple[str, ...], run_date: str | None, dry_run: bool, jobs: int | None
) -> None:
    """Run the drift monitor (`monitor:`) as a recorded run; when its trigger holds, send the drift
    alert and start a retraining run for the same run date.

    Exit 0 whether or not the trigger holds (and when there is no champion yet to compare with);
    1 when the monitor notebook fails; 2 bad input; 3 infrastructure; when a retraining run
    starts and fails, its exit code.
    """
    from nbops.monitor import MonitorOptions, run_monitor

    try:
        result = run_monitor(
            MonitorOptions(
                pipeline_file=pipeline_file, params=params, run_date=_run_date(run_date), dry_run=dry_run, jobs=jobs
            )
        )
    except NbopsError as exc:
        _fail(exc)
    click.echo(f"nbops monitor: {result.outcome.value}: {result.message}", err=True)
    _exit_process(result.exit_code)


@main.command("drift-check", hidden=True)
@click.option("--promoted", metavar="LOCK_SHA256", required=True, help="The promoted pipeline.")
@click.option("--run-id", required=True, help="The monitor run.")
def drift_check_cmd(promoted: str, run_id: str) -> None:
    """The monitor DAG's drift_trigger task: exit 0 when the trigger holds (the task's asset event
    then schedules the training DAG; the drift alert is sent), 99 when it does not (the task is
    skipped), 1 when the monitor notebook logged no such metric, 2 when the run has no monitor
    attempt, 3 infrastructure."""
    from nbops.monitor import NOT_TRIGGERED, drift_check
    from nbops.retrain import load_target

    try:
        pipeline, store, uri = load_target(None, promoted)
        check = drift_check(store, pipeline, uri, run_id)
    except NbopsError as exc:
        _fail(exc)
    click.echo(f"nbops drift-check: {check.message}")
    if check.value is None:  # the notebook logged no such metric: a failure, never a quiet day
        sys.exit(ExitCode.NOTEBOOK)
    sys.exit(ExitCode.OK if check.holds else NOT_TRIGGERED)


@main.command("test")
@PIPELINE_ARG
@click.option("--nbval", is_flag=True, help="Also compare executed outputs with those stored in the notebooks.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Stages run at once (default: cores).")
def test_cmd(pipeline_file: Path, nbval: bool, jobs: int | None) -> None:
    """Lint, then run the whole pipeline with each stage's `test_parameters` in a throwaway store
    and experiment: no production run, registry version, alias move or alert. With a monitor,
    its notebook then runs once against the test run's champion (--dry-run).

    Exit 0 when everything passed; 1 when a notebook failed (naming the stage and the cell) or,
    with --nbval, an output differs; 2 for lint problems; 3 infrastructure. On a failure the
    throwaway store is kept and its place printed.
    """
    from nbops.testrun import TestOptions, test_pipeline

    try:
        report = test_pipeline(TestOptions(pipeline_file=pipeline_file, nbval=nbval, jobs=jobs))
    except NbopsError as exc:
        _fail(exc)
    for problem in report.problems:
        click.echo(f"\n{problem}", err=True)
    for stage, found in report.mismatches.items():
        click.echo(f"\nstage '{stage}': {len(found)} output(s) differ from the notebook's stored outputs:", err=True)
        for mismatch in found:
            click.echo(f"  - {mismatch.describe()}", err=True)
    if report.monitor:
        click.echo(f"nbops test: monitor {report.monitor}", err=True)
    if report.kept is not None:
        click.echo(f"nbops test: the throwaway store is kept for reading: {report.kept}", err=True)
    verdict = "passed" if report.exit_code == ExitCode.OK else f"failed (exit {report.exit_code})"
    click.echo(f"nbops test: {pipeline_file} {verdict}", err=True)
    _exit_process(report.exit_code)


@main.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.option("--name", help="Pipeline name (default: from the directory's name).")
def init_cmd(directory: Path, name: str | None) -> None:
    """Scaffold a project in DIRECTORY (default: here): pipeline.yaml with two stages, their
    notebooks, .gitignore, requirements.txt, a runner Dockerfile and dags/. Never overwrites:
    exit 2, nothing written, when any of those files exists."""
    from nbops.scaffold import init_project

    try:
        made = init_project(directory, name)
    except NbopsError as exc:
        _fail(exc)
    for path in made.files:
        click.echo(f"wrote {path}")
    where = "" if directory == Path(".") else f"cd {directory} && "
    click.echo(
        f"nbops init: project '{made.name}' ready. Next: {where}nbops run   (then: nbops promote; "
        f"docker build -t {made.name}-runner:0.1 .)"
    )


@main.command("lint")
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


@main.command("promote")
@PIPELINE_ARG
@click.option(
    "--dags-dir", type=click.Path(path_type=Path), help="Where DAGs go (default: dags/ beside the pipeline file)."
)
def promote_cmd(pipeline_file: Path, dags_dir: Path | None) -> None:
    """Check the pipeline, freeze its notebooks and write its Airflow DAG."""
    from nbops.promote import promote

    dags_dir = dags_dir or pipeline_file.parent / "dags"
    try:
        report = promote(pipeline_file, dags_dir)
    except NbopsError as exc:
        _fail(exc)
    for location in report.published:
        click.echo(f"published {location}")
    if report.unchanged:
        click.echo(f"nbops promote: {report.dag_file} is up to date (lock {report.lock_sha256[:12]}); no file changed.")
        return
    for path in report.written:
        click.echo(f"wrote {path}")
    for change in report.changes:
        click.echo(f"  {change}")
    click.echo(f"nbops promote: lock {report.lock_sha256}")


@main.command("close-run")
@click.option("--promoted", metavar="LOCK_SHA256", required=True, help="The promoted pipeline's lock sha256.")
@click.option("--run-id", required=True, help="The pipeline run to close.")
@click.option("--airflow-json", default="{}", help="The DAG run: dag_id, run_id, logical_date, conf (JSON).")
def close_run_cmd(promoted: str, run_id: str, airflow_json: str) -> None:
    """Archive and close the MLflow record of a pipeline run (the DAG's last task).

    Closes the parent run FINISHED, FAILED or KILLED as its stages ended; exits 0 whatever
    they did, 3 when the record cannot be written.
    """
    from nbops.provenance import AirflowRun, close_promoted_run
    from nbops.storage import layout, open_store
    from nbops.tracking.store import tracking_uri

    try:
        store = open_store(Path.cwd())
        uri = tracking_uri(layout.state_dir(Path.cwd()))
        closed = close_promoted_run(store, uri, promoted, run_id, AirflowRun.from_json(airflow_json))
    except NbopsError as exc:
        _fail(exc)
    for stage, outcome in closed.stages.items():
        click.echo(f"  {stage}: {outcome}", err=True)
    if closed.orphans:
        click.echo(f"closed {len(closed.orphans)} stage record(s) left open as KILLED", err=True)
    click.echo(f"nbops close-run: run {run_id} {closed.outcome} (MLflow run {closed.parent_run_id})", err=True)


@main.command("audit")
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
    from nbops.audit import audit_model, audit_run
    from nbops.storage.atomic import write_atomic

    try:
        model, pipeline_file = _audit_targets(targets, run_id, pipeline_option)
        report = (
            audit_model(model, pipeline_file=pipeline_file)
            if model
            else audit_run(str(run_id), pipeline_file=pipeline_file)
        )
        if html_file is not None:
            write_atomic(html_file, report.to_html().encode("utf-8"))
    except NbopsError as exc:
        _fail(exc)
    click.echo((report.to_json() if as_json else report.to_text()).rstrip("\n"))
    if html_file is not None:
        click.echo(f"nbops audit: wrote {html_file}", err=True)
    sys.exit(ExitCode.OK if report.ok else ExitCode.AUDIT)


def _audit_targets(
    targets: tuple[str, ...], run_id: str | None, pipeline_option: Path | None
) -> tuple[str | None, Path | None]:
    """The model (None with --run) and the pipeline file named on the command line."""
    from nbops.errors import InputError

    wanted = 1 if run_id is None else 0
    extra = list(targets[wanted:])
    if len(targets) < wanted or len(extra) > 1 or (extra and pipeline_option is not None):
        raise InputError(
            "nbops audit: give exactly one of MODEL (e.g. diagnosis-classifier@champion) and --run RUN_ID, "
            "and at most one pipeline file (positional or --pipeline)."
        )
    model = targets[0] if wanted else None
    return model, Path(extra[0]) if extra else pipeline_option


@main.command("serve")
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
    from nbops.api import resolve_pipeline_file
    from nbops.errors import InputError
    from nbops.serve import serve_model

    try:
        files = [t for t in targets if t.endswith((".yaml", ".yml"))]
        models = [t for t in targets if t not in files]
        if len(files) > 1 or len(models) > 1:
            raise InputError("nbops serve: give at most one MODEL and one pipeline file (a .yaml file).")
        pipeline_file = resolve_pipeline_file(Path(files[0]) if files else Path("pipeline.yaml"))
        sys.exit(serve_model(pipeline_file, models[0] if models else None, port))
    except NbopsError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        sys.exit(0)


@main.command("ui")
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
    except NbopsError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["entry", "main"]
