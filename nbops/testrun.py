"""``nbops test``: lint, then run the whole pipeline with each stage's ``test_parameters`` in a
throwaway store, the fast check before pushing.

The run records into a temporary artifact root and MLflow store: no production run, registry
version, alias move or alert comes of it (the gate runs there too, so a retraining config that
cannot decide fails the test). With a ``monitor:`` block, the monitor notebook then runs once,
``--dry-run``, against the test run's outputs (whatever its gate decided). A failing notebook is exit 1 naming the
stage and the source cell; the throwaway store is then kept, and its place printed, so the
executed notebook can be read. ``--nbval`` also compares each executed notebook's outputs with
those stored in its source (:mod:`nbops.notebook.compare`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from nbops import environment, rundate
from nbops.errors import InputError
from nbops.graph import MONITOR_STAGE
from nbops.lint import lint
from nbops.monitor import MonitorOptions, MonitorOutcome, run_monitor
from nbops.notebook.compare import Mismatch, compare
from nbops.runner.report import say
from nbops.runs import RunOptions, RunSummary
from nbops.runs import run as run_pipeline
from nbops.spec import Pipeline, load_pipeline
from nbops.status import ExitCode
from nbops.storage import layout, open_store
from nbops.storage.base import ENV_CACHE_DIR
from nbops.sweep import unit
from nbops.tracking.store import ENV_TRACKING_URI

ENV_REGISTRY_URI = "MLFLOW_REGISTRY_URI"
"""MLflow's own: a registry apart from the tracking store, overridden too so no version leaves the test."""

TRIGGER = "nbops test"


@dataclass(frozen=True)
class TestOptions:
    """What ``nbops test`` was asked to do."""

    __test__ = False  # not a pytest class

    pipeline_file: Path
    nbval: bool = False
    jobs: int | None = None
    all_points: bool = False
    """Run every point of a swept stage (default: its first point only)."""


@dataclass
class TestReport:
    """What ``nbops test`` found."""

    __test__ = False

    exit_code: int = ExitCode.OK
    problems: list[str] = field(default_factory=list)
    """Lint problems, or why the run failed, one paragraph each."""
    run: RunSummary | None = None
    mismatches: dict[str, list[Mismatch]] = field(default_factory=dict)
    """``--nbval``: by stage, the cells whose outputs differ from the stored ones."""
    monitor: str = ""
    """How the monitor's dry run ended (empty without a monitor)."""
    kept: Path | None = None
    """The throwaway store, kept when something failed."""


@dataclass(frozen=True)
class TestOutcome:
    """What ``nbops test`` prints (on stderr) and its exit code."""

    __test__ = False

    message: str
    exit_code: int
    report: TestReport


def test_command(options: TestOptions) -> TestOutcome:
    """``nbops test``: :func:`test_pipeline`, told as the command tells it: the problems, the
    outputs that differ, the monitor's dry run, the kept store and the verdict.

    Raises:
        InputError: the pipeline file cannot be read.
    """
    report = test_pipeline(options)
    lines = [f"\n{problem}" for problem in report.problems]
    for stage, found in report.mismatches.items():
        lines.append(f"\nstage '{stage}': {len(found)} output(s) differ from the notebook's stored outputs:")
        lines += [f"  - {mismatch.describe()}" for mismatch in found]
    if report.monitor:
        lines.append(f"nbops test: monitor {report.monitor}")
    if report.kept is not None:
        lines.append(f"nbops test: the throwaway store is kept for reading: {report.kept}")
    verdict = "passed" if report.exit_code == ExitCode.OK else f"failed (exit {report.exit_code})"
    lines.append(f"nbops test: {options.pipeline_file} {verdict}")
    return TestOutcome("\n".join(lines), report.exit_code, report)


def test_pipeline(options: TestOptions) -> TestReport:
    """Lint, run with test parameters in a throwaway store, compare outputs when asked.

    Raises:
        InputError: the pipeline file cannot be read.
    """
    report = TestReport()
    report.problems = lint(options.pipeline_file)
    if report.problems:
        report.exit_code = ExitCode.INPUT
        return report
    pipeline = load_pipeline(options.pipeline_file)
    scratch = Path(tempfile.mkdtemp(prefix=f"nbops-test-{pipeline.name}-"))
    try:
        with _throwaway(scratch):
            _run(pipeline, options, report)
    finally:
        if report.exit_code == ExitCode.OK:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            report.kept = scratch
    return report


def _run(pipeline: Pipeline, options: TestOptions, report: TestReport) -> None:
    test_values = {name: dict(pipeline.stage(name).test_parameters) for name in pipeline.spec.stages}
    run = report.run = run_pipeline(
        RunOptions(
            pipeline_file=pipeline.path,
            jobs=options.jobs,
            overrides=test_values,
            alerts=False,
            hints=False,
            trigger=TRIGGER,
            run_date=rundate.today(),
            first_point_only=not options.all_points,
        )
    )
    if run.exit_code != ExitCode.OK:
        report.exit_code = run.exit_code
        report.problems = [
            f"stage '{s.name}' {s.state} (exit {s.exit_code}): {s.message}"
            for s in run.stages.values()
            if s.state.failed
        ]
        return
    if options.nbval:
        _compare_outputs(pipeline, run, report)
    if pipeline.spec.monitor is not None:
        watched = run_monitor(
            MonitorOptions(
                pipeline_file=pipeline.path,
                overrides=dict(pipeline.stage(MONITOR_STAGE).test_parameters),
                dry_run=True,
                alerts=False,
                jobs=options.jobs,
                champion_run=run.run_id,
            )
        )
        report.monitor = f"{watched.outcome.value}: {watched.message}"
        if watched.outcome is MonitorOutcome.FAILED:
            report.exit_code = watched.exit_code or ExitCode.NOTEBOOK
            report.problems.append(f"the monitor notebook failed: {watched.message}")
    if report.mismatches and report.exit_code == ExitCode.OK:
        report.exit_code = ExitCode.NOTEBOOK


def _compare_outputs(pipeline: Pipeline, run: RunSummary, report: TestReport) -> None:
    import nbformat

    store = open_store(pipeline.root)
    for name, st in run.stages.items():
        done = store.completed(pipeline.name, run.run_id, unit(st.stage, st.point.id if st.point else None))
        if done is None:
            continue
        source = nbformat.read(pipeline.notebook_path(st.stage), as_version=4)  # type: ignore[no-untyped-call]
        executed = nbformat.read(done / "output.ipynb", as_version=4)  # type: ignore[no-untyped-call]
        try:
            found = compare(source, executed)
        except ValueError as exc:
            raise InputError(
                f"{pipeline.notebook_path(st.stage)} (stage '{name}'): cannot compare outputs: {exc}"
            ) from None
        if found:
            report.mismatches[name] = found


@contextmanager
def _throwaway(scratch: Path) -> Iterator[None]:
    """This process (and so every stage command) records into ``scratch`` only."""
    say(f"nbops test: recording into a throwaway store, {scratch}")
    with environment.overridden(
        {
            layout.ENV_ARTIFACT_ROOT: str(scratch / "artifacts"),
            ENV_TRACKING_URI: f"sqlite:///{scratch / 'mlflow.db'}",
            ENV_REGISTRY_URI: f"sqlite:///{scratch / 'mlflow.db'}",
            ENV_CACHE_DIR: str(scratch / "cache"),
        }
    ):
        yield
