"""``nbops run``: run a pipeline on this machine with the same stage command as every backend.

Every selected stage is checked before anything starts. Stages whose upstream stages are
done run concurrently up to ``--jobs``; a failure stops its descendants while unrelated
branches finish; at the end a summary table and, on failure, the command that resumes.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from nbops.context import ENV_TRIGGER, git_commit
from nbops.errors import EXIT_INFRA, EXIT_OK, InputError, NbopsError, format_problems
from nbops.graph import descendants, topological_order
from nbops.notebook.overrides import parse_assignments, validate_overrides
from nbops.runner.report import Progress, summary_table
from nbops.spec import Pipeline, load_pipeline
from nbops.stage.contract import coerce_overrides, load_contract
from nbops.storage import layout
from nbops.storage.store import open_store
from nbops.tracking import record
from nbops.tracking.store import ENV_TRACKING_URI, open_client, tracking_uri

KILL_GRACE_S = 20


@dataclass(frozen=True)
class RunOptions:
    """What ``nbops run`` was asked to do."""

    pipeline_file: Path
    stages: tuple[str, ...] = ()
    from_stage: str | None = None
    params: tuple[str, ...] = ()
    jobs: int | None = None
    run_id: str | None = None


@dataclass
class StageState:
    """Bookkeeping of one stage during a run."""

    name: str
    status: str = "pending"  # pending | running | succeeded | failed | skipped
    exit_code: int | None = None
    started: float = 0.0
    duration: float = 0.0
    attempt: int | None = None
    mlflow_run_id: str | None = None
    message: str = ""
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    result_path: Path | None = None
    log_file: IO[bytes] | None = None


@dataclass
class RunSummary:
    """How the run ended."""

    run_id: str
    stages: dict[str, StageState] = field(default_factory=dict)
    exit_code: int = EXIT_OK
    parent_run_id: str = ""


def select_stages(pipeline: Pipeline, stages: tuple[str, ...], from_stage: str | None) -> list[str]:
    """The stages to run, in topological order."""
    graph = pipeline.needs()
    unknown = [s for s in (*stages, *([from_stage] if from_stage else [])) if s not in graph]
    if unknown:
        raise InputError(f"{pipeline.path}: unknown stage(s) {', '.join(unknown)} (stages: {', '.join(graph)}).")
    chosen = set(stages)
    if from_stage:
        chosen |= {from_stage} | descendants(graph, [from_stage])
    order = topological_order(graph)
    return [s for s in order if s in chosen] if chosen else order


def run_pipeline(options: RunOptions) -> RunSummary:
    """Run the selected stages; input problems of any stage are reported before any starts."""
    pipeline = load_pipeline(options.pipeline_file)
    selected = select_stages(pipeline, options.stages, options.from_stage)
    params = _checked_params(pipeline, selected, options.params)
    store = open_store(pipeline.root)
    partial = bool(options.stages or options.from_stage)
    run_id = options.run_id or (store.latest_run_key(pipeline.name) if partial else None) or layout.new_run_id()

    state = layout.state_dir(pipeline.root)
    uri = tracking_uri(state)
    client = open_client(uri)
    experiment = record.ensure_experiment(client, pipeline.name, store.mlflow_location)
    parent = record.get_or_create_parent_run(
        client,
        experiment,
        pipeline.name,
        run_id,
        {
            "nbops.spec_sha256": pipeline.sha256,
            "nbops.git_commit": git_commit(pipeline.root),
            "nbops.trigger": "nbops run",
        },
    )
    summary = RunSummary(run_id=run_id, stages={s: StageState(s) for s in selected}, parent_run_id=parent)
    jobs = options.jobs or os.cpu_count() or 1
    progress = Progress(pipeline.name, run_id, selected)
    progress.start(jobs, parent)
    env = dict(os.environ, **{ENV_TRACKING_URI: uri, ENV_TRIGGER: "nbops run"})
    log_dir = layout.run_dir(store.local_root, pipeline.name, run_id) / ".logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    interrupted = False
    try:
        _schedule(pipeline, summary, params, jobs, env, log_dir, progress)
    except KeyboardInterrupt:
        interrupted = True
        _stop_all(summary, progress)
    failed = [s for s in summary.stages.values() if s.status == "failed"]
    record.set_tags(client, parent, {"nbops.status": "failed" if failed or interrupted else "succeeded"})
    record.finish_run(client, parent, "KILLED" if interrupted else "FAILED" if failed else "FINISHED")
    print(summary_table(summary.stages.values()), flush=True)
    if failed or interrupted:
        first = failed[0] if failed else None
        summary.exit_code = (first.exit_code or EXIT_INFRA) if first else EXIT_INFRA
        resume = _resume_command(options, run_id, first.name if first else selected[0])
        print(f"\nRun {run_id} did not finish. Resume from the failed stage with:\n  {resume}", flush=True)
    else:
        print(f"\nRun {run_id} succeeded. See it with: nbops ui {shlex.quote(str(options.pipeline_file))}", flush=True)
    return summary


def _checked_params(pipeline: Pipeline, selected: list[str], items: tuple[str, ...]) -> dict[str, dict[str, object]]:
    """Typed overrides per stage; every selected stage's contract checked, every problem reported."""
    raw = parse_assignments(list(items))
    problems = [f"-p {s}.*: stage '{s}' is not part of this run" for s in raw if s not in selected]
    result: dict[str, dict[str, object]] = {}
    for name in selected:
        try:
            contract = load_contract(pipeline, name)
            typed = coerce_overrides(contract.schema, raw.get(name, {}), contract.where)
            validate_overrides(contract.schema, {**contract.stage.parameters, **typed}, contract.where)
            result[name] = typed
        except NbopsError as exc:
            problems.append(str(exc))
    if problems:
        raise InputError(format_problems(f"{pipeline.path}: nothing was run; {len(problems)} problem(s):", problems))
    return result


def _schedule(
    pipeline: Pipeline,
    summary: RunSummary,
    params: dict[str, dict[str, object]],
    jobs: int,
    env: dict[str, str],
    log_dir: Path,
    progress: Progress,
) -> None:
    graph = pipeline.needs()
    states = summary.stages
    while True:
        for st in [s for s in states.values() if s.status == "running"]:
            _poll(pipeline, st, graph, states, progress)
        running = sum(1 for s in states.values() if s.status == "running")
        for st in states.values():
            if running >= jobs:
                break
            if st.status == "pending" and all(states[u].status == "succeeded" for u in graph[st.name] if u in states):
                _launch(pipeline, summary.run_id, st, params[st.name], env, log_dir)
                progress.started(st.name)
                running += 1
        if not any(s.status in ("pending", "running") for s in states.values()):
            return
        time.sleep(0.05)


def _launch(
    pipeline: Pipeline, run_id: str, st: StageState, params: dict[str, object], env: dict[str, str], log_dir: Path
) -> None:
    n = len(list(log_dir.glob(f"{st.name}-*.log"))) + 1
    st.log_path = log_dir / f"{st.name}-{n}.log"
    st.result_path = log_dir / f"{st.name}-{n}.result.json"
    cmd = [
        sys.executable, "-m", "nbops", "exec-stage",
        "--pipeline", str(pipeline.path), "--stage", st.name, "--run-id", run_id,
        "--params-json", json.dumps(params), "--result-file", str(st.result_path),
    ]  # fmt: skip
    st.log_file = st.log_path.open("wb")
    st.process = subprocess.Popen(cmd, stdout=st.log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    st.status, st.started = "running", time.monotonic()


def _poll(
    pipeline: Pipeline,
    st: StageState,
    graph: dict[str, tuple[str, ...]],
    states: dict[str, StageState],
    progress: Progress,
) -> None:
    if st.process is None:
        return
    st.duration = time.monotonic() - st.started
    timeout = pipeline.stage(st.name).timeout
    if st.process.poll() is None:
        if st.duration > timeout:
            _terminate(st.process)
            st.message = f"stage timeout of {timeout} s exceeded"
        return
    if st.log_file:
        st.log_file.close()
    code = st.process.returncode
    st.exit_code = code if code >= 0 else EXIT_INFRA
    result = _read_result(st.result_path)
    attempt, mlflow_run, message = result.get("attempt"), result.get("mlflow_run_id"), result.get("message")
    st.attempt = attempt if isinstance(attempt, int) else None
    st.mlflow_run_id = mlflow_run if isinstance(mlflow_run, str) else None
    st.message = st.message or (message if isinstance(message, str) else "") or f"stage command exited {code}"
    if code == 0:
        st.status = "succeeded"
        progress.succeeded(st)
        return
    st.status = "failed"
    progress.failed(st)
    for child in descendants(graph, [st.name]):
        if child in states and states[child].status == "pending":
            states[child].status = "skipped"
            states[child].message = f"upstream stage '{st.name}' failed"
            progress.skipped(child, st.name)


def _read_result(path: Path | None) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the stage's process group, SIGKILL after the grace period."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def _stop_all(summary: RunSummary, progress: Progress) -> None:
    for st in summary.stages.values():
        if st.status == "running" and st.process is not None:
            _terminate(st.process)
            st.status, st.exit_code, st.message = "failed", EXIT_INFRA, "interrupted"
            progress.failed(st)
        elif st.status == "pending":
            st.status, st.message = "skipped", "run interrupted"


def _resume_command(options: RunOptions, run_id: str, stage: str) -> str:
    parts = ["nbops", "run", str(options.pipeline_file), "--run-id", run_id, "--from", stage]
    parts += [a for p in options.params for a in ("-p", p)]
    return shlex.join(parts)
