"""``nbops run``: run a pipeline on this machine with the same stage command as every backend.

Every selected stage is checked before anything starts. Stages whose upstream stages are
done run concurrently up to ``--jobs``; an attempt that fails for a retryable reason (exit 3)
is tried again up to the stage's ``retries``, with exponential backoff as Airflow does; a
failure stops its descendants while unrelated branches finish. SIGTERM or SIGINT stops
every running stage (each archives and records its partial notebook), closes the parent
run ``KILLED`` and exits 3. At the end: a summary table and, unless the run succeeded, the
command that resumes it. Everything is printed to stderr.

The runner records for the stage commands it starts (:mod:`nbops.runner.recorder`), so they
never import MLflow, and starts the commands of the next stages while their upstream stages
run: each loads, checks and boots its kernel, then waits to be released once the upstream
attempts are sealed; if an upstream fails it is told to stop, having claimed nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from nbops import alerts, provenance, rundate
from nbops.context import ENV_TRIGGER, git_state
from nbops.errors import InputError, NbopsError, did_you_mean, format_problems
from nbops.graph import MONITOR_STAGE, descendants, topological_order
from nbops.notebook.overrides import parse_assignments, validate_overrides
from nbops.retrain import describe, run_gate
from nbops.runner.interrupt import RunInterrupted, RunSignals
from nbops.runner.recorder import Recorder
from nbops.runner.report import Progress, say, summary_table
from nbops.spec import Pipeline, load_pipeline
from nbops.stage.cache import CacheHit
from nbops.stage.command import complete_reuse, probe_reuse
from nbops.stage.contract import coerce_overrides, load_contract
from nbops.stage.lifecycle import StageAttempt
from nbops.stage.process import STOP_GRACE_S, stop
from nbops.stage.result import StageRequest, StageResult
from nbops.status import ExitCode, StageStatus
from nbops.storage import Store, layout, open_store
from nbops.tracking import pipeline_run, record, tags
from nbops.tracking.store import ENV_TRACKING_URI, experiment_location, open_client, tracking_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from nbops.tracking.gate import GateResult

RETRY_DELAY_S = 2.0
"""First wait before retrying an attempt locally; doubled each time (Airflow's default is 300 s)."""
MAX_RETRY_DELAY_S = 60.0
DONE = ("succeeded", "cached")
"""Stage states that count as done for the stages after them."""
RUN_DATE_FILE = "run_date"
"""Beside a run's logs: the run date it started with, so that resuming it resolves ``${run_date}`` the same."""
BACKSTOP_S = STOP_GRACE_S + 30
"""How long past its timeout a stage command may run before the runner stops it itself."""


@dataclass(frozen=True)
class RunOptions:
    """What ``nbops run`` was asked to do."""

    pipeline_file: Path
    stages: tuple[str, ...] = ()
    from_stage: str | None = None
    params: tuple[str, ...] = ()
    jobs: int | None = None
    run_id: str | None = None
    retry_delay: float = RETRY_DELAY_S
    run_date: str | None = None
    """What ``${run_date}`` resolves to (YYYY-MM-DD); default: a resumed run's own, else today (UTC)."""
    monitor: bool = False
    """Run the pipeline's monitor notebook (``monitor:``) as the run's only stage, named ``monitor``."""
    trigger: str = "nbops run"
    """What started the run, as recorded (``nbops run``, ``nbops monitor``)."""
    force: tuple[str, ...] = ()
    """Stages to run even when a completed attempt could be reused, with their descendants;
    ``*`` for every stage."""
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Typed parameter values by stage, between the spec's and ``params`` (``nbops test``'s
    ``test_parameters``)."""
    alerts: bool = True
    """Send the spec's alerts (``nbops test`` sends none)."""
    hints: bool = True
    """End with the command that shows the run (``nbops ui``) or resumes it (not for a throwaway store)."""


@dataclass
class StageState:
    """Bookkeeping of one stage during a run."""

    name: str
    status: str = "pending"  # pending | early | waiting (to retry) | running | succeeded | failed | killed | skipped
    """``early``: its stage command is started and waits to be released (its upstream still runs)."""
    outcome: StageStatus | None = None
    exit_code: int | None = None
    tries: int = 0
    not_before: float = 0.0
    started: float = 0.0
    duration: float = 0.0
    attempt: int | None = None
    mlflow_run_id: str | None = None
    message: str = ""
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    result_path: Path | None = None
    log_file: IO[bytes] | None = None
    launch: str = ""
    probed: bool = False
    """Whether the runner looked for a completed attempt to reuse (:func:`nbops.stage.command.probe_reuse`)."""
    reusable: tuple[StageAttempt, CacheHit] | None = None
    """What it found: the attempt to record as ``cached`` instead of starting a stage command."""


@dataclass
class RunSummary:
    """How the run ended."""

    run_id: str
    stages: dict[str, StageState] = field(default_factory=dict)
    exit_code: int = ExitCode.OK
    parent_run_id: str = ""
    interrupted: str | None = None
    run_date: str = ""
    gate: GateResult | None = None
    """The retraining gate's decision, when the run included the gate's stage and it succeeded."""
    tracking_uri: str = ""
    experiment_id: str = ""


def select_stages(
    pipeline: Pipeline, stages: tuple[str, ...], from_stage: str | None, monitor: bool = False
) -> list[str]:
    """The stages to run, in topological order (the monitor alone for a monitor run)."""
    if monitor:
        pipeline.stage(MONITOR_STAGE)
        return [MONITOR_STAGE]
    graph = pipeline.needs()
    asked = [("--stage", s) for s in stages] + ([("--from", from_stage)] if from_stage else [])
    unknown = [f"{flag} {s}: unknown stage '{s}'{did_you_mean(s, graph)}" for flag, s in asked if s not in graph]
    if unknown:
        header = f"{pipeline.path}: {len(unknown)} unknown stage(s); the stages are {', '.join(graph)}:"
        raise InputError(format_problems(header, unknown))
    chosen = set(stages)
    if from_stage:
        chosen |= {from_stage} | descendants(graph, [from_stage])
    order = topological_order(graph)
    return [s for s in order if s in chosen] if chosen else order


def run_pipeline(options: RunOptions) -> RunSummary:
    """Run the selected stages; input problems of any stage are reported before any starts.

    Raises:
        InputError: the spec, a notebook or an override is wrong (nothing was started).
        InfraError: the tracking store or artifact store cannot be opened.
    """
    with RunSignals() as signals:
        run = _LocalRun(options)
        try:
            run.prepare()
            run.schedule()
        except RunInterrupted as exc:
            signals.defer()
            run.summary.interrupted = str(exc)
            run.stop_all()
        except BaseException as exc:  # nothing started ahead of its upstream may outlive a run that never began
            run.summary.interrupted = run.summary.interrupted or f"stopped by {type(exc).__name__}"
            run.stop_all()
            run.close_recorder()
            raise
        signals.defer()
        return run.finish()


class _LocalRun:
    """One ``nbops run``: prepare, schedule stage commands, finish the record."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.summary = RunSummary(run_id=options.run_id or "")
        self.pipeline: Pipeline | None = None
        self.client: MlflowClient | None = None
        self.progress: Progress | None = None
        self.params: dict[str, dict[str, object]] = {}
        self.env: dict[str, str] = {}
        self.log_dir = Path()
        self.jobs = 1
        self.recorder: Recorder | None = None
        self.graph: dict[str, tuple[str, ...]] = {}
        self.forced: set[str] = set()

    def prepare(self) -> None:
        options = self.options
        pipeline = self.pipeline = load_pipeline(options.pipeline_file)
        selected = select_stages(pipeline, options.stages, options.from_stage, options.monitor)
        self.graph = {MONITOR_STAGE: ()} if options.monitor else pipeline.needs()
        self.forced = _forced(pipeline, options.force, selected)
        store = open_store(pipeline.root)
        partial = bool(options.stages or options.from_stage)
        fresh = (layout.MONITOR_RUN_PREFIX if options.monitor else "") + layout.new_run_id()
        run_id = options.run_id or (store.latest_run_key(pipeline.name) if partial else None) or fresh
        run_date = options.run_date or _recorded_run_date(store, pipeline, run_id) or rundate.today()
        self.params = _checked_params(pipeline, selected, options.params, run_date, options.overrides)
        self.summary = RunSummary(run_id=run_id, stages={s: StageState(s) for s in selected}, run_date=run_date)
        uri = self.summary.tracking_uri = tracking_uri(layout.state_dir(pipeline.root))
        self.jobs = options.jobs or os.cpu_count() or 1
        self.env = dict(
            os.environ, **{ENV_TRACKING_URI: uri, ENV_TRIGGER: options.trigger, rundate.ENV_RUN_DATE: run_date}
        )
        self.log_dir = layout.run_dir(store.local_root, pipeline.name, run_id) / ".logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.log_dir / RUN_DATE_FILE).write_text(run_date, encoding="utf-8")
        # The first stages start now and load while this process opens the record; they are
        # released by schedule(), once the pipeline run exists.
        self.recorder = Recorder()
        self._start_early()
        self.client = open_client(uri)
        experiment = self.summary.experiment_id = record.ensure_experiment(
            self.client, pipeline.name, experiment_location(uri, store.mlflow_location)
        )
        git = git_state(pipeline.root)
        parent = self.summary.parent_run_id = pipeline_run.get_or_create(
            self.client,
            experiment,
            pipeline.name,
            run_id,
            {
                tags.SPEC_SHA256: pipeline.sha256,
                tags.GIT_COMMIT: git.commit,
                tags.GIT_DIRTY: tags.flag(git.dirty),
                tags.TRIGGER: options.trigger,
                tags.RUN_DATE: run_date,
            },
        )
        sources = provenance.publish_sources(store, pipeline, stages=[MONITOR_STAGE] if options.monitor else None)
        provenance.archive(self.client, parent, store, sources)
        for key in provenance.log_overrides(self.client, parent, self.params):
            say(f"nbops run: -p {key}: the run's first invocation recorded another value; the stage run has this one")
        reused = [] if options.monitor else _reused(store, pipeline, run_id, selected)
        if reused:
            record.set_tags(self.client, parent, {tags.REUSED: " ".join(reused)})
        if any(st.process is not None for st in self.summary.stages.values()):
            self.recorder.warm()  # else at the first stage command: a run of reused stages needs no HTML
        self.progress = Progress(pipeline.name, run_id, selected)
        self.progress.start(self.jobs, self.summary.parent_run_id)

    def schedule(self) -> None:
        graph = self.graph
        states = self.summary.stages
        while True:
            for st in [s for s in states.values() if s.status == "running"]:
                self._poll(st)
            running = sum(1 for s in states.values() if s.status == "running")
            now = time.monotonic()
            for st in states.values():
                if running >= self.jobs:
                    break
                ready = all(states[u].status in DONE for u in graph[st.name] if u in states)
                if st.status == "pending" and ready and self._reused(st):
                    continue
                if (st.status in ("pending", "early") and ready) or (st.status == "waiting" and now >= st.not_before):
                    self._launch(st)
                    running += 1
            self._start_early()
            if not any(s.status in ("pending", "early", "waiting", "running") for s in states.values()):
                return
            time.sleep(0.02)

    def _start_early(self) -> None:
        """Start the stage commands of the next stages to become ready, up to ``jobs`` of them, so
        their interpreter, imports and checks overlap the stages they wait for."""
        graph, states = self.graph, self.summary.stages
        early = sum(1 for s in states.values() if s.status == "early")
        for st in states.values():
            if early >= self.jobs:
                return
            upstream = [states[u].status for u in graph[st.name] if u in states]
            if st.status != "pending" or not all(u in ("running", "early", *DONE) for u in upstream):
                continue
            # With every upstream done, the stage may reuse a completed attempt: look first. With one
            # still running, it cannot (that upstream's new manifest is in its key).
            if all(u in DONE for u in upstream) and self._probe(st):
                continue
            self._spawn(st)
            st.status = "early"
            early += 1

    def _probe(self, st: StageState) -> bool:
        """Look once for a completed attempt ``st`` may reuse; True when there is one."""
        assert self.pipeline is not None  # noqa: S101 - prepare() ran
        if st.probed or not self._may_reuse(st.name):
            return st.reusable is not None
        st.probed = True
        request = StageRequest(
            pipeline_file=self.pipeline.path,
            stage=st.name,
            run_id=self.summary.run_id,
            params=self.params[st.name],
            run_date=self.summary.run_date,
        )
        try:
            st.reusable = probe_reuse(request)
        except NbopsError as exc:  # the stage command will meet it too, and say so where it belongs
            say(f"nbops run: stage '{st.name}': not looked up for reuse ({exc})")
        return st.reusable is not None

    def _may_reuse(self, stage: str) -> bool:
        assert self.pipeline is not None  # noqa: S101 - prepare() ran
        return self.pipeline.stage(stage).cache and stage not in self.forced

    def _reused(self, st: StageState) -> bool:
        """Record ``st`` as ``cached`` here when it may reuse a completed attempt (no stage command)."""
        assert self.progress is not None  # noqa: S101 - prepare() ran
        if not self._probe(st) or st.reusable is None:
            return False
        attempt, hit = st.reusable
        st.reusable, st.tries, st.started = None, 1, time.monotonic()
        try:
            result = complete_reuse(attempt, hit)
        except NbopsError as exc:
            result = StageResult(
                stage=st.name, run_id=self.summary.run_id, status=StageStatus.INFRA_FAILED, message=str(exc)
            )
        st.duration = time.monotonic() - st.started
        st.outcome, st.attempt, st.mlflow_run_id = result.status, result.attempt, result.mlflow_run_id
        st.exit_code, st.message = result.exit_code, result.message
        if result.status is not StageStatus.CACHED:  # recording it failed: run it instead
            say(f"nbops run: stage '{st.name}': could not be recorded as reused ({result.message}); running it")
            st.tries, st.outcome = 0, None
            return False
        st.status = "cached"
        self.progress.cached(st)
        if not self._gate_after(st):
            self._fail(st)
        return True

    def _launch(self, st: StageState) -> None:
        """Release the stage command started early for ``st``, or start one released at once."""
        assert self.progress is not None and self.recorder is not None  # noqa: S101 - prepare() ran
        if st.status != "early":
            self._spawn(st)
        self.recorder.release(st.launch)
        st.tries += 1
        st.status, st.started, st.message = "running", time.monotonic(), ""
        self.progress.started(st.name, st.tries)

    def _spawn(self, st: StageState) -> None:
        """Start a stage command for ``st`` that waits for :meth:`_launch` to release it."""
        assert self.pipeline is not None and self.recorder is not None  # noqa: S101 - prepare() ran
        n = len(list(self.log_dir.glob(f"{st.name}-*.log"))) + 1
        st.log_path = self.log_dir / f"{st.name}-{n}.log"
        st.result_path = self.log_dir / f"{st.name}-{n}.result.json"
        cmd = [
            sys.executable, "-m", "nbops", "exec-stage",
            "--pipeline", str(self.pipeline.path), "--stage", st.name, "--run-id", self.summary.run_id,
            "--params-json", json.dumps(self.params[st.name]), "--result-file", str(st.result_path),
            "--force",  # looked up here already, or an upstream runs now: its new manifest is in the key
        ]  # fmt: skip
        st.log_file = st.log_path.open("wb")
        st.launch = f"{st.name}-{n}"
        if self.client is not None:  # prepared: warm the HTML export for it (a no-op once done)
            self.recorder.warm()
        env = {**self.env, **self.recorder.env(st.launch)}
        st.process = subprocess.Popen(
            cmd, stdout=st.log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def _cancel_early(self, st: StageState) -> None:
        """Tell a command started early that it will not run; it exits having claimed nothing."""
        if self.recorder is not None:
            self.recorder.release(st.launch, go=False)
        if st.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                st.process.wait(timeout=STOP_GRACE_S)
            if st.process.poll() is None:
                stop([st.process], grace=1)
        if st.log_file:
            st.log_file.close()
        for leftover in (st.log_path, st.result_path):
            if leftover is not None:
                leftover.unlink(missing_ok=True)
        st.process = st.log_file = None

    def _poll(self, st: StageState) -> None:
        assert self.pipeline is not None and self.progress is not None  # noqa: S101 - prepare() ran
        if st.process is None:
            return
        st.duration = time.monotonic() - st.started
        stage = self.pipeline.stage(st.name)
        if st.process.poll() is None:
            if st.duration > stage.timeout + BACKSTOP_S:
                stop([st.process])
                st.message = f"stage timeout of {stage.timeout} s exceeded and the stage command did not stop itself"
            return
        self._collect(st)
        if st.outcome is not None and st.outcome.succeeded:
            st.status = "succeeded"
            self.progress.succeeded(st)
            if self._gate_after(st):
                return
        elif st.outcome is not None and st.outcome.retryable and st.tries <= stage.retries:
            delay = min(self.options.retry_delay * 2 ** (st.tries - 1), MAX_RETRY_DELAY_S)
            st.status, st.not_before = "waiting", time.monotonic() + delay
            self.progress.retrying(st, delay, stage.retries)
            return
        self._fail(st)

    def _fail(self, st: StageState) -> None:
        """``st`` failed: say so and skip its descendants (stopping those started early)."""
        assert self.progress is not None  # noqa: S101 - prepare() ran
        st.status = "failed"
        self.progress.failed(st)
        for child in descendants(self.graph, [st.name]):
            child_state = self.summary.stages.get(child)
            if child_state is not None and child_state.status in ("pending", "early"):
                if child_state.status == "early":
                    self._cancel_early(child_state)
                child_state.status, child_state.message = "skipped", f"upstream stage '{st.name}' failed"
                self.progress.skipped(child, st.name)

    def _collect(self, st: StageState) -> None:
        """Read the finished stage command's exit code and result file into ``st``."""
        assert st.process is not None  # noqa: S101 - launched
        if st.log_file:
            st.log_file.close()
        st.duration = time.monotonic() - st.started
        code = st.process.returncode
        st.exit_code = int(ExitCode.of(code))
        result = _read_result(st.result_path)
        if result is not None:
            st.outcome, st.attempt, st.mlflow_run_id = result.status, result.attempt, result.mlflow_run_id
            st.message = st.message or result.message
        else:  # killed before it could write one
            st.outcome = StageStatus.KILLED if code < 0 else _status_of_exit(st.exit_code)
            st.message = st.message or f"stage command exited {code} without a result"
        st.process = None

    def _gate_after(self, st: StageState) -> bool:
        """Run the retraining gate once its stage is sealed. False when the gate could not decide
        (no version, a metric missing) or failed: the stage then counts as failed."""
        assert self.pipeline is not None and self.client is not None  # noqa: S101 - prepare() ran
        retrain = self.pipeline.spec.retrain
        if retrain is None or st.name != retrain.stage:
            return True
        try:
            decided = self.summary.gate = run_gate(
                self.client, self.pipeline, self.summary.tracking_uri, self.summary.run_id, self.options.alerts
            )
        except NbopsError as exc:
            st.exit_code, st.message = int(exc.exit_code), f"retraining gate: {exc}"
            return False
        say(f"nbops run: {describe(decided)}")
        if decided.failed:
            st.exit_code, st.message = int(ExitCode.NOTEBOOK), f"retraining gate: {decided.message}"
        return not decided.failed

    def stop_all(self) -> None:
        """Stop every running stage within the grace period and record how each ended."""
        states = self.summary.stages.values()
        early = [s for s in states if s.status == "early"]
        for st in early:  # told now, they exit while the running stages stop
            if self.recorder is not None:
                self.recorder.release(st.launch, go=False)
        running = [s for s in states if s.status == "running" and s.process is not None]
        if running:
            names = ", ".join(s.name for s in running)
            say(f"nbops run: {self.summary.interrupted}: stopping {names} (up to {STOP_GRACE_S} s)")
        stop([s.process for s in running if s.process is not None])
        for st in early:
            self._cancel_early(st)
        for st in running:
            self._collect(st)
            st.status = "killed"
            if self.progress is not None:
                self.progress.failed(st)
        for st in states:
            if st.status in ("pending", "early", "waiting"):
                st.status, st.message = "skipped", "run interrupted"

    def _alert_failure(self, failed: list[StageState]) -> None:
        """The ``failure`` alert of a run that failed or was stopped (a failing alert is only logged)."""
        if self.pipeline is None or not self.options.alerts:
            return
        summary = self.summary
        why = summary.interrupted or "; ".join(f"stage '{s.name}' exit {s.exit_code}: {s.message}" for s in failed)
        link = None
        if summary.parent_run_id and summary.experiment_id:
            link = alerts.mlflow_link(summary.tracking_uri, summary.experiment_id, summary.parent_run_id)
        alerts.send(
            self.pipeline.spec.alerts,
            alerts.Alert(
                event="failure",
                title=f"{self.pipeline.name}: run {summary.run_id} failed",
                body=f"{self.options.trigger} on {summary.run_date}: {why or 'did not finish'}",
                pipeline=self.pipeline.name,
                run_id=summary.run_id,
                link=link,
            ),
        )

    def close_recorder(self) -> None:
        """Stop serving stage commands (every one has exited by now)."""
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None

    def finish(self) -> RunSummary:
        self.close_recorder()
        summary = self.summary
        stages = list(summary.stages.values())
        failed = [s for s in stages if s.status in ("failed", "killed")]
        if summary.interrupted:
            outcome, mlflow_status, summary.exit_code = "killed", "KILLED", ExitCode.INFRA
        elif failed:
            outcome, mlflow_status = "failed", "FAILED"
            summary.exit_code = failed[0].exit_code or ExitCode.INFRA
        else:
            outcome, mlflow_status = "succeeded", "FINISHED"
        if self.client is not None and summary.parent_run_id:
            try:
                pipeline_run.close(self.client, summary.parent_run_id, outcome, mlflow_status)
            except NbopsError as exc:
                say(f"nbops run: {exc}")
                summary.exit_code = summary.exit_code or ExitCode.INFRA
        if outcome != "succeeded":
            self._alert_failure(failed)
        if not any(s.tries for s in stages) and summary.interrupted:
            say(f"\nnbops run: {summary.interrupted} before any stage started; nothing ran.")
            return summary
        say(summary_table(stages))
        if summary.gate is not None:
            say(f"\n{describe(summary.gate)}")
        if outcome == "succeeded":
            ui = f" See it with: nbops ui {shlex.quote(str(self.options.pipeline_file))}" if self.options.hints else ""
            say(f"\nRun {summary.run_id} succeeded.{ui}")
            return summary
        first = failed[0].name if failed else next(s.name for s in stages if s.status not in DONE)
        why = f"was stopped ({summary.interrupted})" if summary.interrupted else "did not finish"
        which = "stopped" if summary.interrupted else "failed"
        if not self.options.hints:
            say(f"\nRun {summary.run_id} {why}.")
            return summary
        say(f"\nRun {summary.run_id} {why}. Resume from the {which} stage with:")
        say(f"  {_resume_command(self.options, summary.run_id, first)}")
        return summary


def _checked_params(
    pipeline: Pipeline,
    selected: list[str],
    items: tuple[str, ...],
    run_date: str | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, object]]:
    """Typed overrides per stage; every selected stage's contract checked, every problem reported."""
    raw = parse_assignments(list(items))
    stages = list(pipeline.spec.stages)
    known = f" (stages: {', '.join(stages)})"
    problems = [
        f"-p {s}.*: stage '{s}' is not part of this run"
        if s in stages
        else f"-p {s}.*: unknown stage '{s}'{did_you_mean(s, stages) or known}"
        for s in raw
        if s not in selected
    ]
    result: dict[str, dict[str, object]] = {}
    for name in selected:
        try:
            contract = load_contract(pipeline, name, run_date=run_date)
            given = dict((overrides or {}).get(name, {}))
            typed = {**given, **coerce_overrides(contract.schema, raw.get(name, {}), contract.where, name)}
            given = rundate.resolve({**contract.stage.parameters, **typed}, run_date or rundate.today())
            validate_overrides(contract.schema, given, contract.where)
            result[name] = typed
        except NbopsError as exc:
            problems.append(str(exc))
    if problems:
        raise InputError(format_problems(f"{pipeline.path}: nothing was run; {len(problems)} problem(s):", problems))
    return result


def _forced(pipeline: Pipeline, force: tuple[str, ...], selected: list[str]) -> set[str]:
    """The stages ``--force`` names (``*``: all) with their descendants."""
    if "*" in force:
        return set(selected)
    graph = pipeline.needs()
    unknown = [f"--force {s}: unknown stage '{s}'{did_you_mean(s, graph)}" for s in force if s not in graph]
    if unknown:
        raise InputError(format_problems(f"{pipeline.path}: {len(unknown)} unknown stage(s):", unknown))
    return set(force) | descendants(graph, list(force)) if force else set()


def _recorded_run_date(store: Store, pipeline: Pipeline, run_id: str) -> str | None:
    """The run date a resumed run started with (its attempts' manifests do not hold it; the
    runner notes it beside the run's logs)."""
    noted = layout.run_dir(store.local_root, pipeline.name, run_id) / ".logs" / RUN_DATE_FILE
    try:
        return rundate.parse(noted.read_text(encoding="utf-8"), str(noted))
    except (OSError, NbopsError):
        return None


def _reused(store: Store, pipeline: Pipeline, run_id: str, selected: list[str]) -> list[str]:
    """``stage#attempt`` of the completed attempts of this run that a resumed run builds on."""
    from nbops.storage.manifest import read_manifest

    found = []
    for stage in pipeline.spec.stages:
        done = None if stage in selected else store.completed(pipeline.name, run_id, stage)
        if done is not None:
            found.append(f"{stage}#{read_manifest(done).attempt}")
    return found


def _read_result(path: Path | None) -> StageResult | None:
    try:
        return StageResult.from_json(path.read_text(encoding="utf-8")) if path else None
    except (OSError, ValueError, TypeError):
        return None


def _status_of_exit(code: int) -> StageStatus:
    return {
        ExitCode.OK: StageStatus.SUCCEEDED,
        ExitCode.NOTEBOOK: StageStatus.FAILED,
        ExitCode.INPUT: StageStatus.INPUT_ERROR,
    }.get(ExitCode.of(code), StageStatus.INFRA_FAILED)


def _resume_command(options: RunOptions, run_id: str, stage: str) -> str:
    parts = ["nbops", "run", str(options.pipeline_file), "--run-id", run_id, "--from", stage]
    parts += [a for p in options.params for a in ("-p", p)]
    return shlex.join(parts)
