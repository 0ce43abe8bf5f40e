"""One stage attempt, phase by phase (DESIGN §10); each phase takes a record and returns one.

    prepare -> boot -> [wait] -> locate -> [reuse?] -> claim -> run -> archive -> record -> seal
                                                      \\-> claim -> reuse -> record -> seal   (a hit)

Every check that can fail on bad input runs in :func:`prepare` and :func:`locate`, before
anything is claimed. The kernel boots right after prepare (:class:`Workspace`), so its
start-up overlaps the rest, waiting for upstream stages included (:mod:`nbops.stage.recorder`).
The executed notebook is archived whatever happened; a success is recorded, then sealed (the
manifest, the attempt's last write), and only then closed ``FINISHED``. The records are in
:mod:`nbops.stage.phases`; the driver that chains them is :mod:`nbops.stage.command`; where
reuse, the monitor's inputs and what follows a seal plug in is :mod:`nbops.stage.slots`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import nbops.stage.attempt_record as attempt_record
from nbops import modelseal, rundate
from nbops.context import StageContext
from nbops.errors import InfraError, NbopsError
from nbops.lock import notebook_rel
from nbops.notebook.outcome import Outcome, Terminated
from nbops.notebook.redact import Redactor
from nbops.stage import carried
from nbops.stage.checkpoint import checkpoints
from nbops.stage.contract import load_contract
from nbops.stage.load import load, materialize
from nbops.stage.phases import Archived, Claimed, Executed, Located, Prepared, Recorded, Sealed
from nbops.stage.recorder import RecorderLink, make_tracker
from nbops.stage.slots import AttemptHooks, CacheHit
from nbops.stage.tracker import Recording
from nbops.stage.upstream import grouped, upstream_attempts
from nbops.status import StageStatus
from nbops.storage import layout, open_store, points
from nbops.storage.atomic import write_atomic
from nbops.tracking.store import ENV_TRACKING_URI, experiment_location, tracking_uri

if TYPE_CHECKING:
    from nbops.notebook.engine import EarlyKernel
    from nbops.stage.result import StageRequest
    from nbops.stage.signals import AttemptSignals
    from nbops.storage.manifest import SealedModel


def log(message: str) -> None:
    """Progress lines of the stage command go to stderr, prefixed for grep."""
    print(f"nbops: {message}", file=sys.stderr, flush=True)  # noqa: T201 - the stage's own log


def failed(outcome: Outcome, status: StageStatus, ename: str, evalue: str) -> Outcome:
    """A copy of ``outcome`` that failed outside any cell (records never change in place)."""
    copy = replace(outcome, metrics=dict(outcome.metrics), skipped_cells=list(outcome.skipped_cells))
    copy.fail(status, ename, evalue)
    return copy


# -- prepare ----------------------------------------------------------------------------------


def prepare(request: StageRequest, execute: bool = True) -> Prepared:
    """Load the pipeline, validate the stage's contract, parameterize (unless only a reuse is
    considered: ``execute`` false), open the store.

    Raises:
        InputError: anything wrong with the spec, notebook or parameters.
        InfraError: the artifact store cannot be opened.
    """
    pipeline, git = load(request)
    run_date = request.run_date or rundate.current()
    store = open_store(pipeline.root)
    point = points.point_at(pipeline, request.stage, request.point, store, request.run_id)
    contract = load_contract(pipeline, request.stage, points.merged(request.params, point), run_date)
    notebook = None
    files: tuple[carried.Carried, ...] = ()
    if execute:
        from nbops.notebook.execute import parameterize

        notebook = parameterize(contract.notebook.node, contract.params, contract.where)
        files = carried.snapshot(pipeline, request.stage)
    redactor = Redactor.from_env()
    # Recorded in full so a run's record reads the same whichever backend injected which subset.
    effective = redactor.value({**contract.schema.defaults, **contract.params})
    return Prepared(
        request=request,
        pipeline=pipeline,
        git=git,
        run_date=run_date,
        contract=contract,
        notebook=notebook,
        effective=effective,
        store=store,
        uri=tracking_uri(layout.state_dir(pipeline.root)),
        redactor=redactor,
        carried=files,
        signing_key=modelseal.signing_key() if execute else None,
        point=point,
    )


@dataclass
class Workspace:
    """What an attempt holds while it runs: its early kernel and, promoted, a scratch copy of the project.

    A resource, not a record: :meth:`release` frees it on every path out of the attempt.
    """

    cwd: Path
    kernel: EarlyKernel | None = None
    scratch: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def release(self) -> None:
        """Stop the early kernel unless execution already did (then a no-op), remove the scratch directory."""
        if self.kernel is not None:
            self.kernel.shutdown()
            self.kernel = None
        if self.scratch is not None:
            self.scratch.cleanup()
            self.scratch = None


def boot(prepared: Prepared) -> Workspace:
    """Start the kernel in the directory the notebook will run in, so that its start-up overlaps
    everything up to the first cell. A promoted notebook sits in the shared store: it runs in a
    scratch directory laid out like the project, with the files it carries at their places, so
    relative imports and paths behave as in a local run."""
    from nbops.notebook.engine import EarlyKernel
    from nbops.notebook.reader import KERNEL_NAME

    stage = prepared.stage
    workspace = Workspace(cwd=prepared.contract.notebook.path.parent)
    if prepared.pipeline.frozen:
        workspace.scratch = tempfile.TemporaryDirectory(prefix="nbops-cwd-")
        materialize(prepared.pipeline.frozen[stage.name].files, Path(workspace.scratch.name))
        workspace.cwd = Path(workspace.scratch.name) / Path(stage.notebook).parent
        workspace.cwd.mkdir(parents=True, exist_ok=True)
    workspace.kernel = EarlyKernel.start(KERNEL_NAME, str(workspace.cwd))
    return workspace


def locate(prepared: Prepared, hooks: AttemptHooks) -> Located:
    """Find the upstream attempts this one consumes (their manifests are sealed by now): the
    ``upstream`` slot's, else this run's ancestors; then the key a reuse must match.

    Raises:
        InputError: a direct upstream has no completed attempt in this run.
    """
    upstream = hooks.upstream(prepared)
    if upstream is None:
        upstream = upstream_attempts(prepared.store, prepared.pipeline, prepared.request.run_id, prepared.stage.name)
    located = Located(
        prepared=prepared,
        inputs={name: path for name, (path, _) in upstream.items()},
        consumed=tuple(consumed for _, consumed in upstream.values()),
        cache_key=None,
    )
    return replace(located, cache_key=hooks.reuse_key(located))


def reusable(located: Located, hooks: AttemptHooks) -> CacheHit | None:
    """The completed attempt this one may reuse instead of running (none when forced or keyless)."""
    if located.cache_key is None or located.prepared.request.force:
        return None
    return hooks.before_claim(located, located.cache_key)


# -- claim ------------------------------------------------------------------------------------


def claim(located: Located, link: RecorderLink | None, hit: CacheHit | None = None, own: bool = True) -> Claimed:
    """Claim the next attempt number and start the MLflow record in the background. ``own``: this
    is the stage command, whose process (and so kernel) gets the stage's variables and whose log
    says so; a runner or worker recording a reuse in its own process passes False."""
    from nbops.stage.tracker import StageTracker

    prepared = located.prepared
    stage, run_id = prepared.stage, prepared.request.run_id
    attempt = prepared.store.claim(prepared.pipeline.name, run_id, prepared.unit)
    outputs = attempt.workdir / "outputs"
    outputs.mkdir()
    reuses = hit.reused().location if hit is not None else None
    prepared.store.begin(attempt, attempt_record.start(located, attempt.number, reuses).to_bytes())
    if own:
        log(f"stage '{prepared.label}' of run {run_id}: attempt {attempt.number} in {attempt.location}")
    plain, swept = grouped(located.inputs, located.consumed)
    ctx = StageContext(prepared.pipeline.name, run_id, stage.name, attempt.number, outputs, plain, swept)
    # The kernel may be up already (boot): it gets these with the run id before any cell.
    kernel_vars = {**ctx.to_env(), ENV_TRACKING_URI: prepared.uri}
    if own:
        os.environ.update(kernel_vars)
    tracker = make_tracker(
        link,
        StageTracker,
        uri=prepared.uri,
        experiment=prepared.pipeline.name,
        artifact_location=experiment_location(prepared.uri, prepared.store.mlflow_location),
        run_id=run_id,
        stage=stage.name,
        attempt=attempt.number,
        parent_tags=attempt_record.parent_tags(prepared),
        stage_tags=attempt_record.stage_tags(prepared, attempt.number),
        parameters=dict(prepared.effective),
        point=(prepared.point.index, prepared.point.id) if prepared.point is not None else None,
        reuse=hit is not None,
    )
    tracker.start()
    return Claimed(located=located, attempt=attempt, kernel_vars=kernel_vars, tracker=tracker, hit=hit)


# -- run --------------------------------------------------------------------------------------


def run(claimed: Claimed, workspace: Workspace, signals: AttemptSignals, started: float) -> Executed:
    """Execute the notebook within the stage timeout; every outcome is returned, none raised.

    Each cell's progress is printed to stdout (:mod:`nbops.notebook.progress`: the stage's log,
    a pod's log under Airflow); the partial notebook is checkpointed to the store as it is saved.
    """
    from nbops.notebook.execute import execute
    from nbops.notebook.progress import LinePrinter

    prepared, tracker = claimed.prepared, claimed.tracker
    stage = prepared.stage
    assert prepared.notebook is not None  # noqa: S101 - prepared to execute
    signals.start_timer(stage.timeout - (time.monotonic() - started), limit=stage.timeout)

    def kernel_env() -> dict[str, str]:
        env = {**claimed.kernel_vars, "MLFLOW_RUN_ID": tracker.run_id()}
        tracker.warm()
        return env

    outcome, executed = Outcome(), None
    try:
        executed, outcome = execute(
            prepared.notebook,
            input_path=prepared.contract.notebook.path,
            output_path=claimed.attempt.workdir / "output.ipynb",
            cwd=workspace.cwd,
            cell_timeout=stage.cell_timeout,
            kernel_env=kernel_env,
            early_kernel=workspace.kernel,
            progress=LinePrinter(sys.stdout),
            checkpoint=checkpoints(prepared.store, claimed.attempt, log),
        )
    except Terminated as exc:  # in the few statements before the engine took over
        outcome.stopped_by(exc)
    except Exception as exc:  # the kernel would not start, nbclient broke down, no MLflow run
        outcome = failed(outcome, StageStatus.INFRA_FAILED, type(exc).__name__, str(exc))
    finally:
        signals.defer()
        workspace.release()
    return Executed(claimed=claimed, outcome=outcome, notebook=executed)


def reuse(claimed: Claimed) -> Executed:
    """Instead of running: the outcome of a ``cached`` attempt that stands for ``claimed.hit``."""
    hit = claimed.hit
    assert hit is not None  # noqa: S101 - claimed for a reuse
    outcome = Outcome(status=StageStatus.CACHED, evalue=hit.describe(), metrics=dict(hit.manifest.metrics))
    return Executed(claimed=claimed, outcome=outcome, notebook=None)


# -- archive ----------------------------------------------------------------------------------


def archive(executed: Executed) -> Archived:
    """Export the readable HTML, list a success's files in its manifest, copy the attempt (and the
    source notebook, by content) to the store."""
    claimed, outcome = executed.claimed, executed.outcome
    prepared = claimed.prepared
    if executed.notebook is not None:
        try:
            page = claimed.tracker.to_html(executed.notebook)
        except InfraError as exc:  # the recording runner failed or went away; the record step says so
            log(f"the readable HTML was not written: {exc}")
        else:
            write_atomic(claimed.attempt.workdir / "output.html", page.encode("utf-8"))
    mlflow_run_id, outcome = _tracked_run(claimed, outcome)
    models, outcome = _sealed_models(claimed, outcome) if mlflow_run_id else ((), outcome)
    manifest = None
    if outcome.status.succeeded and mlflow_run_id:
        manifest = attempt_record.manifest(claimed, outcome, mlflow_run_id, models)
    try:  # a no-op for a local store; a success exactly as listed, anything else as it is
        if claimed.hit is None and not prepared.pipeline.frozen:  # the source bytes by content, for the audit
            prepared.store.publish(notebook_rel(prepared.contract.notebook.sha256), prepared.contract.notebook.raw)
        carried.publish(prepared.store, prepared.carried)
        prepared.store.upload(claimed.attempt, manifest)
    except InfraError as exc:
        log(str(exc))
        if manifest is not None:  # never sealed: the store lacks what it would list
            manifest, outcome = None, failed(outcome, StageStatus.UPLOAD_FAILED, "ArtifactStoreError", str(exc))
    return Archived(claimed=claimed, outcome=outcome, mlflow_run_id=mlflow_run_id, manifest=manifest)


def _sealed_models(claimed: Claimed, outcome: Outcome) -> tuple[tuple[SealedModel, ...], Outcome]:
    """The model versions a successful attempt registered, sealed (signed with the configured key);
    a seal that fails fails the attempt: it is never sealed without the models it registered."""
    if not outcome.status.succeeded or claimed.hit is not None:  # a reuse registers nothing
        return (), outcome
    key = claimed.prepared.signing_key
    try:
        return claimed.tracker.seal_models(str(key) if key is not None else None), outcome
    except InfraError as exc:
        log(str(exc))
        return (), failed(outcome, StageStatus.INFRA_FAILED, "ModelSealError", str(exc))


def _tracked_run(claimed: Claimed, outcome: Outcome) -> tuple[str | None, Outcome]:
    """The MLflow stage run, or None (and the attempt failed) when set-up never got one."""
    try:
        return claimed.tracker.run_id(), outcome
    except InfraError as exc:
        if outcome.status.succeeded or outcome.status is StageStatus.INFRA_FAILED:
            outcome = failed(outcome, StageStatus.INFRA_FAILED, "TrackingStoreError", str(exc))
        return None, outcome


# -- record -----------------------------------------------------------------------------------


def record(archived: Archived) -> Recorded:
    """Metrics, tags, the executed notebook and the manifest into the MLflow stage run.

    A success is left open: :func:`seal` closes it once the manifest is stored.
    """
    claimed, outcome, manifest = archived.claimed, archived.outcome, archived.manifest
    if not archived.mlflow_run_id:
        return Recorded(claimed, outcome, archived.mlflow_run_id, manifest)
    workdir = claimed.attempt.workdir
    try:
        claimed.tracker.finish(
            Recording(
                status=outcome.status.mlflow_status,
                metrics=outcome.metrics,
                tags=attempt_record.outcome_tags(claimed, outcome, message(claimed.prepared, outcome)),
                files=[workdir / "output.ipynb", workdir / "output.html"],
                manifest=manifest,
                inputs=claimed.located.consumed,
                # a reuse registers nothing
                version_tags=attempt_record.version_tags(claimed, archived.mlflow_run_id) if not claimed.hit else {},
                close=manifest is None,
            )
        )
    except InfraError as exc:
        log(str(exc))
        if outcome.status.succeeded:  # never sealed without its record
            outcome = failed(outcome, StageStatus.INFRA_FAILED, "TrackingStoreError", str(exc))
        manifest = None
    return Recorded(claimed, outcome, archived.mlflow_run_id, manifest)


# -- seal -------------------------------------------------------------------------------------


def seal(recorded: Recorded) -> Sealed:
    """Write the manifest (the proof the attempt finished), then close the record ``FINISHED``."""
    claimed, outcome, manifest = recorded.claimed, recorded.outcome, recorded.manifest
    if manifest is None or not outcome.status.succeeded:
        return Sealed(claimed, outcome, recorded.mlflow_run_id, None)
    try:
        claimed.prepared.store.seal(claimed.attempt, manifest)
    except NbopsError as exc:
        log(str(exc))
        outcome = failed(outcome, StageStatus.SEAL_FAILED, "ArtifactStoreError", str(exc))
        claimed.tracker.mark_failed(outcome.status.value, exc)
        return Sealed(claimed, outcome, recorded.mlflow_run_id, None)
    try:
        claimed.tracker.close(outcome.status.mlflow_status)
    except InfraError as exc:  # the manifest stands; the record says RUNNING until a retry
        log(f"{exc}; the attempt's manifest is stored, its MLflow run could not be closed")
        outcome = failed(outcome, StageStatus.INFRA_FAILED, "TrackingStoreError", str(exc))
    return Sealed(claimed, outcome, recorded.mlflow_run_id, manifest)


def message(prepared: Prepared, outcome: Outcome) -> str:
    """One sentence for logs, results and the record, secrets masked."""
    return prepared.redactor.text(outcome.message)
