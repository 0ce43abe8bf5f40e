"""``nbops run``: run a pipeline on this machine with the same stage command as every backend.

The runner schedules stage attempts and reads their outcomes; nothing else. Every selected
stage is checked before anything starts (:mod:`nbops.runner.plan`). Stages whose upstream
stages are done run concurrently up to ``--jobs``; an attempt that fails for a retryable
reason (exit 3) is tried again up to the stage's ``retries``, with exponential backoff as
Airflow does; a failure stops its descendants while unrelated branches finish. SIGTERM or
SIGINT stops every running stage (each archives and records its partial notebook), closes the
parent run ``KILLED`` and exits 3. What follows a sealed stage (the registry gate) and the end
of the run (the failure alert) plugs into the run slots (:mod:`nbops.stage.slots`).

The runner records for the stage commands it starts (:mod:`nbops.runner.recorder`), so they
never import MLflow, and starts the commands of the next stages while their upstream stages
run: each loads, checks and boots its kernel, then waits to be released once the upstream
attempts are sealed; if an upstream fails it is told to stop, having claimed nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from nbops import rundate
from nbops.context import ENV_FIRST_POINT_ONLY, ENV_TRIGGER
from nbops.errors import NbopsError
from nbops.graph import MONITOR_STAGE, descendants
from nbops.runner import plan, units
from nbops.runner.interrupt import RunInterrupted, RunSignals
from nbops.runner.plan import RunOptions, select_stages
from nbops.runner.record import RunRecord, open_record
from nbops.runner.recorder import Recorder
from nbops.runner.report import Progress, finish_report, say
from nbops.runner.state import RunSummary, StageRun
from nbops.spec import Pipeline, load_pipeline
from nbops.stage.command import complete_reuse, probe_reuse
from nbops.stage.process import STOP_GRACE_S, stop
from nbops.stage.result import StageRequest, StageResult
from nbops.stage.slots import RunEnd, RunHooks, RunInfo
from nbops.status import ExitCode, PipelineOutcome, StageState, StageStatus
from nbops.storage import Store, layout, open_store
from nbops.tracking.store import ENV_TRACKING_URI, tracking_uri

MAX_RETRY_DELAY_S = 60.0
BACKSTOP_S = STOP_GRACE_S + 30
"""How long past its timeout a stage command may run before the runner stops it itself."""


def run_pipeline(options: RunOptions, hooks: RunHooks) -> RunSummary:
    """Run the selected stages with ``hooks`` in the run's slots; input problems of any stage are
    reported before any starts.

    Raises:
        InputError: the spec, a notebook or an override is wrong (nothing was started).
        InfraError: the tracking store or artifact store cannot be opened.
    """
    with RunSignals() as signals:
        run = _LocalRun(options, hooks)
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
            if run.progress is not None:
                run.progress.close()
            raise
        signals.defer()
        return run.finish()


class _LocalRun:
    """One ``nbops run``: prepare, schedule stage commands, finish the record."""

    def __init__(self, options: RunOptions, hooks: RunHooks) -> None:
        self.options = options
        self.hooks = hooks
        self.summary = RunSummary(run_id=options.run_id or "")
        self.pipeline: Pipeline | None = None
        self.record: RunRecord | None = None
        self.progress: Progress | None = None
        self.params: dict[str, dict[str, object]] = {}
        self.env: dict[str, str] = {}
        self.log_dir = Path()
        self.jobs = 1
        self.recorder: Recorder | None = None
        self.graph: dict[str, tuple[str, ...]] = {}
        self.forced: set[str] = set()
        self.store: Store | None = None

    def prepare(self) -> None:
        options = self.options
        pipeline = self.pipeline = load_pipeline(options.pipeline_file)
        selected = select_stages(pipeline, options.stages, options.from_stage, options.monitor)
        self.graph = {MONITOR_STAGE: ()} if options.monitor else pipeline.needs()
        self.forced = plan.forced(pipeline, options, selected)
        store = open_store(pipeline.root)
        run_id = plan.run_id_of(store, pipeline, options)
        run_date = plan.run_date_of(store, pipeline, options, run_id)
        self.params = plan.checked_params(pipeline, selected, options.params, run_date, options.overrides)
        self.store = store
        self.summary = RunSummary(
            run_id, units.units_of(pipeline, selected, options.first_point_only), run_date=run_date
        )
        uri = self.summary.tracking_uri = tracking_uri(layout.state_dir(pipeline.root))
        self.jobs = options.jobs or os.cpu_count() or 1
        self.env = dict(
            os.environ,
            **{ENV_TRACKING_URI: uri, ENV_TRIGGER: options.trigger, rundate.ENV_RUN_DATE: run_date},
            **({ENV_FIRST_POINT_ONLY: "1"} if options.first_point_only else {}),
        )
        self.log_dir = layout.run_dir(store.local_root, pipeline.name, run_id) / ".logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.log_dir / plan.RUN_DATE_FILE).write_text(run_date, encoding="utf-8")
        # The first stages start now and load while this process opens the record; they are
        # released by schedule(), once the pipeline run exists.
        self.recorder = Recorder()
        self._start_early()
        info = RunInfo(pipeline, run_id, run_date, options.trigger, uri, experiment_id="", parent_run_id="")
        reused = [] if options.monitor else plan.reused_attempts(store, pipeline, run_id, selected)
        self.record = open_record(pipeline, store, info, self.params, reused, say, monitor=options.monitor)
        self.summary.experiment_id = self.record.info.experiment_id
        self.summary.parent_run_id = self.record.info.parent_run_id
        if any(st.process is not None for st in self.summary.stages.values()):
            self.recorder.warm()  # else at the first stage command: a run of reused stages needs no HTML
        labels = [st.label for st in self.summary.stages.values()]
        self.progress = Progress(pipeline.name, run_id, labels, options.progress)
        self.progress.start(self.jobs, self.summary.parent_run_id)

    def schedule(self) -> None:
        while True:
            states = self.summary.stages
            for st in [s for s in states.values() if s.state is StageState.RUNNING]:
                self._poll(st)
            self._expand()
            states = self.summary.stages
            running = sum(1 for s in states.values() if s.state is StageState.RUNNING)
            now = time.monotonic()
            for st in states.values():
                if running >= self.jobs:
                    break
                ready = units.ready(states, self.graph, st) and not st.sweep_pending
                if units.at_limit(states, self.pipeline, st):
                    continue
                if st.state is StageState.PENDING and ready and self._reused(st):
                    continue
                startable = st.state in (StageState.PENDING, StageState.EARLY) and ready
                if startable or (st.state is StageState.WAITING and now >= st.not_before):
                    self._launch(st)
                    running += 1
            self._start_early()
            if not any(s.state.active for s in states.values()):
                return
            time.sleep(0.02)

    def _expand(self) -> None:
        """Replace each ``foreach_from`` placeholder whose upstream stages are done by its points."""
        assert self.pipeline is not None and self.store is not None  # noqa: S101 - prepare() ran
        self.summary.stages, refused = units.expand_ready(
            self.summary.stages,
            self.graph,
            self.pipeline,
            self.store,
            self.summary.run_id,
            self.options.first_point_only,
        )
        for st in refused:
            self._fail(st)

    def _start_early(self) -> None:
        """Start the stage commands of the next stages to become ready, up to ``jobs`` of them, so
        their interpreter, imports and checks overlap the stages they wait for."""
        states = self.summary.stages
        early = sum(1 for s in states.values() if s.state is StageState.EARLY)
        for st in states.values():
            if early >= self.jobs:
                return
            upstream = [u.state for u in units.upstream(states, self.graph, st)]
            if (
                st.sweep_pending
                or st.state is not StageState.PENDING
                or not all(u.done or u in (StageState.RUNNING, StageState.EARLY) for u in upstream)
            ):
                continue
            # With every upstream done, the stage may reuse a completed attempt: look first. With one
            # still running, it cannot (that upstream's new manifest is in its key).
            if all(u.done for u in upstream) and self._probe(st):
                continue
            self._spawn(st)
            st.state = StageState.EARLY
            early += 1

    def _request(self, st: StageRun) -> StageRequest:
        assert self.pipeline is not None  # noqa: S101 - prepare() ran
        return StageRequest(
            pipeline_file=self.pipeline.path,
            stage=st.stage,
            run_id=self.summary.run_id,
            params=self.params[st.stage],
            run_date=self.summary.run_date,
            force=True,  # looked up here already, or an upstream runs now: its new manifest is in the key
            point=st.point.index if st.point is not None else None,
        )

    def _probe(self, st: StageRun) -> bool:
        """Look once for a completed attempt ``st`` may reuse; True when there is one."""
        assert self.pipeline is not None  # noqa: S101 - prepare() ran
        may_reuse = self.pipeline.stage(st.stage).cache and st.stage not in self.forced
        if st.probed or not may_reuse:
            return st.reusable is not None
        st.probed = True
        try:
            st.reusable = probe_reuse(replace(self._request(st), force=False), self.hooks.attempt)
        except NbopsError as exc:  # the stage command will meet it too, and say so where it belongs
            say(f"nbops run: stage '{st.label}': not looked up for reuse ({exc})")
        return st.reusable is not None

    def _reused(self, st: StageRun) -> bool:
        """Record ``st`` as ``cached`` here when it may reuse a completed attempt (no stage command)."""
        assert self.progress is not None  # noqa: S101 - prepare() ran
        if not self._probe(st) or st.reusable is None:
            return False
        found, st.reusable = st.reusable, None
        st.started, st.tries = time.monotonic(), 1
        try:
            result = complete_reuse(found, self.hooks.attempt)
        except NbopsError as exc:  # the store refused the record: the stage runs instead
            result = StageResult(st.name, self.summary.run_id, StageStatus.INFRA_FAILED, message=str(exc))
        st.read(result, time.monotonic() - st.started)
        if result.status is not StageStatus.CACHED:  # recording it failed: run it instead
            say(f"nbops run: stage '{st.label}': could not be recorded as reused ({result.message}); running it")
            st.tries, st.outcome = 0, None
            return False
        st.state = StageState.CACHED
        self.progress.cached(st)
        if not self._stage_done(st):
            self._fail(st)
        return True

    def _launch(self, st: StageRun) -> None:
        """Release the stage command started early for ``st``, or start one released at once."""
        assert self.progress is not None and self.recorder is not None  # noqa: S101 - prepare() ran
        if st.state is not StageState.EARLY:
            self._spawn(st)
        self.recorder.release(st.launch)
        st.tries += 1
        st.state, st.started, st.message = StageState.RUNNING, time.monotonic(), ""
        self.progress.started(st.label, st.tries)

    def _spawn(self, st: StageRun) -> None:
        """Start a stage command for ``st`` that waits for :meth:`_launch` to release it."""
        assert self.recorder is not None  # noqa: S101 - prepare() ran
        n = len(list(self.log_dir.glob(f"{st.file_key}-*.log"))) + 1
        st.log_path = self.log_dir / f"{st.file_key}-{n}.log"
        st.result_path = self.log_dir / f"{st.file_key}-{n}.result.json"
        argv = self._request(st).to_argv(result_file=st.result_path)
        st.log_file = st.log_path.open("wb")
        st.launch = f"{st.file_key}-{n}"
        if self.record is not None:  # prepared: warm the HTML export for it (a no-op once done)
            self.recorder.warm()
        env = {**self.env, **self.recorder.env(st.launch)}
        st.process = subprocess.Popen(
            [sys.executable, "-m", "nbops", *argv],
            stdout=st.log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def _poll(self, st: StageRun) -> None:
        assert self.pipeline is not None and self.progress is not None  # noqa: S101 - prepare() ran
        if st.process is None:
            return
        st.duration = time.monotonic() - st.started
        stage = self.pipeline.stage(st.stage)
        if st.process.poll() is None:
            self.progress.watch(st)
            if st.duration > stage.timeout + BACKSTOP_S:
                stop([st.process])
                st.message = f"stage timeout of {stage.timeout} s exceeded and the stage command did not stop itself"
            return
        st.collect(time.monotonic() - st.started)
        if st.outcome is not None and st.outcome.succeeded:
            st.state = StageState.SUCCEEDED
            self.progress.succeeded(st)
            if self._stage_done(st):
                return
        elif st.outcome is not None and st.outcome.retryable and st.tries <= stage.retries:
            delay = min(self.options.retry_delay * 2 ** (st.tries - 1), MAX_RETRY_DELAY_S)
            st.state, st.not_before = StageState.WAITING, time.monotonic() + delay
            self.progress.retrying(st, delay, stage.retries)
            return
        self._fail(st)

    def _stage_done(self, st: StageRun) -> bool:
        """The ``stage_done`` slot for a sealed stage (a swept one: once its last point is sealed);
        False when it says the stage failed after all."""
        assert self.record is not None  # noqa: S101 - prepare() ran
        if not units.stage_complete(self.summary.stages, st.stage):
            return True
        verdict = self.hooks.stage_done(self.record.info, st.stage)
        if verdict is None:
            return True
        if verdict.note:
            say(verdict.note)
        if verdict.failure:
            st.exit_code, st.message = int(verdict.exit_code), verdict.failure
            return False
        return True

    def _fail(self, st: StageRun) -> None:
        """``st`` failed: say so and skip its descendants (stopping those started early)."""
        assert self.progress is not None  # noqa: S101 - prepare() ran
        st.state = StageState.FAILED
        self.progress.failed(st)
        below = descendants(self.graph, [st.stage])
        for child_state in self.summary.stages.values():
            if child_state.stage in below and child_state.state in (StageState.PENDING, StageState.EARLY):
                if child_state.state is StageState.EARLY:
                    child_state.cancel_early(self.recorder)
                child_state.state, child_state.message = StageState.SKIPPED, f"upstream stage '{st.name}' failed"
                self.progress.skipped(child_state.label, st.name)

    def stop_all(self) -> None:
        """Stop every running stage within the grace period and record how each ended."""
        states = self.summary.stages.values()
        early = [s for s in states if s.state is StageState.EARLY]
        for st in early:  # told now, they exit while the running stages stop
            if self.recorder is not None:
                self.recorder.release(st.launch, go=False)
        running = [s for s in states if s.state is StageState.RUNNING and s.process is not None]
        if running:
            names = ", ".join(s.name for s in running)
            say(f"nbops run: {self.summary.interrupted}: stopping {names} (up to {STOP_GRACE_S} s)")
        stop([s.process for s in running if s.process is not None])
        for st in early:
            st.cancel_early(self.recorder)
        for st in running:
            st.collect(time.monotonic() - st.started)
            st.state = StageState.KILLED
            if self.progress is not None:
                self.progress.failed(st)
        for st in states:
            if st.state in (StageState.PENDING, StageState.EARLY, StageState.WAITING):
                st.state, st.message = StageState.SKIPPED, "run interrupted"

    def close_recorder(self) -> None:
        """Stop serving stage commands (every one has exited by now)."""
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None

    def finish(self) -> RunSummary:
        """Close the record with the run's outcome, fill the ``run_ended`` slot, print the summary."""
        self.close_recorder()
        if self.progress is not None:
            self.progress.close()
        summary = self.summary
        stages = list(summary.stages.values())
        failed = [s for s in stages if s.state.failed]
        outcome = summary.outcome = PipelineOutcome.of(
            [StageStatus.SUCCEEDED.value if s.state.done else s.state.value for s in stages],
            stopped=bool(summary.interrupted),
        )
        if outcome is PipelineOutcome.KILLED:
            summary.exit_code = ExitCode.INFRA
        elif outcome is PipelineOutcome.FAILED:
            summary.exit_code = (failed[0].exit_code if failed else None) or ExitCode.INFRA
        if self.record is not None:
            refused = self.record.close(outcome)
            if refused:
                say(f"nbops run: {refused}")
                summary.exit_code = summary.exit_code or ExitCode.INFRA
            why = summary.interrupted or "; ".join(f"stage '{s.name}' exit {s.exit_code}: {s.message}" for s in failed)
            self.hooks.run_ended(self.record.info, RunEnd(outcome, why))
        say(finish_report(summary, self.options, self.hooks.report()))
        return summary


__all__ = ["RunOptions", "RunSummary", "run_pipeline", "select_stages"]
