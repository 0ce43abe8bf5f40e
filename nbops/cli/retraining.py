"""The retraining loop's commands: the gate and its approval, the drift monitor and the
monitor DAG's trigger check."""

from __future__ import annotations

from pathlib import Path

import click

from nbops.cli.base import PIPELINE_ARG, exit_process, finish, maps_errors, parse_run_date


@click.command("gate")
@maps_errors
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
    from nbops.retrain import gate_command

    finish(gate_command(pipeline_file, run_id, promoted))


@click.command("approve")
@maps_errors
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
    from nbops.retrain import approve_command

    finish(approve_command(pipeline_file, run_id, reject, promoted))


@click.command("monitor")
@maps_errors
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

    options = MonitorOptions(
        pipeline_file=pipeline_file, params=params, run_date=parse_run_date(run_date), dry_run=dry_run, jobs=jobs
    )
    result = run_monitor(options)
    click.echo(f"nbops monitor: {result.outcome.value}: {result.message}", err=True)
    exit_process(result.exit_code)


@click.command("drift-check", hidden=True)
@maps_errors
@click.option("--promoted", metavar="LOCK_SHA256", required=True, help="The promoted pipeline.")
@click.option("--run-id", required=True, help="The monitor run.")
def drift_check_cmd(promoted: str, run_id: str) -> None:
    """The monitor DAG's drift_trigger task: exit 0 when the trigger holds (the task's asset event
    then schedules the training DAG; the drift alert is sent), 99 when it does not (the task is
    skipped), 1 when the monitor notebook logged no such metric, 2 when the run has no monitor
    attempt, 3 infrastructure."""
    from nbops.tasks import drift_check_command

    finish(drift_check_command(promoted, run_id))


COMMANDS = (gate_cmd, approve_cmd, monitor_cmd, drift_check_cmd)
