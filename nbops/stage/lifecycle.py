"""One stage attempt, phase by phase (DESIGN §10).

    prepare -> boot -> wait -> locate -> cache lookup -> claim -> run -> archive -> record -> seal
                                                      \-> claim -> reuse -> record -> seal   (a hit)

Every check that can fail on bad input runs in :meth:`StageAttempt.prepare` and
:meth:`StageAttempt.locate`, before anything is claimed. The kernel boots right after
prepare, so its start-up overlaps the rest: a command the local runner started ahead of its
upstream stages waits for its release with the kernel booting (:mod:`nbops.stage.recorder`),
and MLflow set-up, started at the claim, overlaps it too (under the local runner the runner
does it). The executed notebook is archived whatever happened; a success is recorded, then
sealed (the manifest, the attempt's last write), and only then closed ``FINISHED``; a stage
that may be reused is then indexed under its key (:mod:`nbops.stage.cache`). When a completed
attempt with the same key exists, nothing runs: the attempt is claimed, recorded ``cached``
pointing to the one it reuses, and sealed. Both backends run every phase because both run
this command; the retraining gate runs after the stage, as its own step (:mod:`nbops.retrain`).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops import __version__, environment, rundate
from nbops.context import ENV_AIRFLOW, ENV_IMAGE, ENV_TRIGGER, GitState, StageContext, git_state
from nbops.errors import InfraError, InputError, NbopsError
from nbops.graph import MONITOR_STAGE, ancestors
from nbops.lock import fetch_lock, notebook_rel
from nbops.notebook.outcome import Outcome, Terminated
from nbops.notebook.redact import Redactor
from nbops.spec import FrozenFile, Pipeline, load_pipeline
from nbops.stage import cache
from nbops.stage.cache import CacheHit
from nbops.stage.contract import StageContract, load_contract
from nbops.stage.recorder import RecorderLink, Tracker, make_tracker
from nbops.stage.result import StageRequest, StageResult
from nbops.stage.tracker import Recording
from nbops.status import StageStatus
from nbops.storage import Attempt, Store, layout, open_store
from nbops.storage.atomic import write_atomic
from nbops.storage.manifest import Manifest, ManifestInput, NotebookRef, build_manifest
from nbops.tracking import tags
from nbops.tracking.store import ENV_TRACKING_URI, experiment_location, tracking_uri

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from nbops.notebook.engine import EarlyKernel
    from nbops.stage.signals import AttemptSignals


def log(message: str) -> None:
    """Progress lines of the stage command go to stderr, prefixed for grep."""
    print(f"nbops: {message}", file=sys.stderr, flush=True)  # noqa: T201 - the stage's own log


class StageAttempt:
    """The state of one attempt as it moves through its phases; each phase is one method."""

    def __init__(self, request: StageRequest, signals: AttemptSignals | None, link: RecorderLink | None = None) -> None:
        self.request = request
        self.signals = signals
        """None when a runner or an Airflow worker records a reuse in its own process (no stage command)."""
        self.link = link
        self.started = time.monotonic()
        # prepare
        self.pipeline: Pipeline
        self.contract: StageContract
        self.prepared: NotebookNode
        self.effective: dict[str, Any] = {}
        self.redactor = Redactor.from_env()
        self.store: Store
        self.git = GitState("unknown", dirty=False)
        self.inputs: dict[str, Path] = {}
        self.consumed: tuple[ManifestInput, ...] = ()
        self.uri = ""
        self.run_date = ""
        self.cache_key: str | None = None
        # boot
        self.kernel: EarlyKernel | None = None
        self.scratch: tempfile.TemporaryDirectory[str] | None = None
        # claim
        self.claimed: Attempt | None = None
        self.kernel_vars: dict[str, str] = {}
        self.tracker: Tracker | None = None
        # run
        self.outcome = Outcome()
        self.executed: NotebookNode | None = None
        # reuse
        self.hit: CacheHit | None = None
        # archive / record / seal
        self.manifest: Manifest | None = None
        self.mlflow_run_id: str | None = None
        self.phases: dict[str, float] = {}

    def timed(self, phase: Callable[[], None]) -> None:
        """Run one phase and note how long it took (``StageResult.phases``, for measurements)."""
        began = time.monotonic()
        try:
            phase()
        finally:
            self.phases[phase.__name__] = round(time.monotonic() - began, 3)

    # -- prepare ------------------------------------------------------------------------------

    def prepare(self, execute: bool = True) -> None:
        """Load the pipeline, validate the stage's contract, parameterize (unless only a reuse is
        considered: ``execute`` false), open the store.

        Raises:
            InputError: anything wrong with the spec, notebook or parameters.
            InfraError: the artifact store cannot be opened.
        """
        self.pipeline, self.git = _load(self.request)
        self.run_date = self.request.run_date or rundate.current()
        self.contract = load_contract(self.pipeline, self.request.stage, self.request.params, self.run_date)
        if execute:
            from nbops.notebook.execute import parameterize

            self.prepared = parameterize(self.contract.notebook.node, self.contract.params, self.contract.where)
        # What the notebook runs with: its defaults under the injected values, recorded in full
        # so a run's record reads the same whichever backend injected which subset.
        self.effective = self.redactor.value({**self.contract.schema.defaults, **self.contract.params})
        self.store = open_store(self.pipeline.root)
        self.uri = tracking_uri(layout.state_dir(self.pipeline.root))

    def boot(self) -> None:
        """Start the kernel, in the directory the notebook will run in, so that its start-up
        overlaps everything up to the first cell (waiting for the upstream stages included)."""
        from nbops.notebook.engine import EarlyKernel
        from nbops.notebook.reader import KERNEL_NAME

        # A promoted notebook sits in the shared store: it runs in a scratch directory laid out
        # like the project, with the files it carries at their places.
        if self.pipeline.frozen:
            self.scratch = tempfile.TemporaryDirectory(prefix="nbops-cwd-")
            _materialize(self.pipeline.frozen[self.contract.stage.name].files, Path(self.scratch.name))
            self.cwd().mkdir(parents=True, exist_ok=True)
        self.kernel = EarlyKernel.start(KERNEL_NAME, str(self.cwd()))

    def cwd(self) -> Path:
        """Where the notebook runs: beside its source; when promoted, at the same place in a scratch
        copy of the project, so relative imports and paths behave as in a local run."""
        if self.scratch is None:
            return self.contract.notebook.path.parent
        return Path(self.scratch.name) / Path(self.contract.stage.notebook).parent

    def release_resources(self) -> None:
        """Stop the early kernel unless execution already did (then a no-op), remove the scratch directory."""
        if self.kernel is not None:
            self.kernel.shutdown()
            self.kernel = None
        if self.scratch is not None:
            self.scratch.cleanup()
            self.scratch = None

    def wait(self) -> None:
        """A command the runner started ahead of its upstream stages waits here to be released;
        its time limit counts from the release.

        Raises:
            ReleaseCancelled: the runner will not release it (nothing was claimed).
        """
        if self.link is not None:
            self.link.wait_release()
            self.started = time.monotonic()

    def locate(self) -> None:
        """Find the upstream attempts this one consumes (their manifests are sealed by now).

        Raises:
            InputError: a direct upstream has no completed attempt in this run.
        """
        if self.contract.stage.name == MONITOR_STAGE:
            upstream = _champion_attempts(self.store, self.pipeline, self.uri)
        else:
            upstream = _upstream_attempts(self.store, self.pipeline, self.request.run_id, self.contract.stage.name)
        self.inputs = {name: path for name, (path, _) in upstream.items()}
        self.consumed = tuple(consumed for _, consumed in upstream.values())
        if self.contract.stage.cache:
            self.cache_key = cache.stage_key(
                pipeline=self.pipeline.name,
                stage=self.contract.stage.name,
                notebook_sha256=self.contract.notebook.sha256,
                files=cache.carried_files(self.pipeline, self.contract.stage.name),
                parameters=self.effective,
                inputs=self.consumed,
                environment_id=cache.environment_id(image()),
            )

    def cache_lookup(self) -> CacheHit | None:
        """The completed attempt this one may reuse instead of running (none when forced, or when
        the stage reads the outside world: ``cache: false``)."""
        if self.cache_key is None or self.request.force:
            return None
        return cache.lookup(self.store, self.pipeline.name, self.contract.stage.name, self.cache_key)

    # -- claim --------------------------------------------------------------------------------

    def claim(self, export: bool = True) -> None:
        """Claim the next attempt number and start the MLflow record in the background; with
        ``export``, give this process (and so the kernel) the stage's variables."""
        from nbops.stage.tracker import StageTracker

        stage, run_id = self.contract.stage, self.request.run_id
        notebook = self.contract.notebook
        claimed = self.claimed = self.store.claim(self.pipeline.name, run_id, stage.name)
        outputs = claimed.workdir / "outputs"
        outputs.mkdir()
        if self.signals is not None:  # a stage command's own log (not a reuse recorded by a runner)
            log(f"stage '{stage.name}' of run {run_id}: attempt {claimed.number} in {claimed.location}")
        ctx = StageContext(self.pipeline.name, run_id, stage.name, claimed.number, outputs, self.inputs)
        # The kernel may be up already (boot): it gets these with the run id before any cell.
        self.kernel_vars = {**ctx.to_env(), ENV_TRACKING_URI: self.uri}
        if export:
            os.environ.update(self.kernel_vars)
        promoted = self.request.promoted
        airflow = airflow_tags()
        code = {tags.GIT_COMMIT: self.git.commit, tags.GIT_DIRTY: tags.flag(self.git.dirty)}
        lock = {tags.LOCK_SHA256: promoted} if promoted else {}
        env = environment.current()
        self.tracker = make_tracker(
            self.link,
            StageTracker,
            uri=self.uri,
            experiment=self.pipeline.name,
            artifact_location=experiment_location(self.uri, self.store.mlflow_location),
            run_id=run_id,
            stage=stage.name,
            attempt=claimed.number,
            parent_tags={
                tags.SPEC_SHA256: self.pipeline.sha256,
                tags.TRIGGER: os.environ.get(ENV_TRIGGER, "exec-stage"),
                **code,
                **airflow,
                **lock,
            },
            stage_tags={
                tags.NOTEBOOK_PATH: stage.notebook,
                tags.NOTEBOOK_SHA256: notebook.sha256,
                tags.ENVIRONMENT: env.description,
                tags.PACKAGES_SHA256: env.packages_sha256,
                **({tags.IMAGE: named} if (named := image()) else {}),
                tags.ATTEMPT_PATH: layout.attempt_rel(self.pipeline.name, run_id, stage.name, claimed.number),
                tags.RUN_ID: run_id,
                tags.RUN_DATE: self.run_date,
                tags.PIPELINE: self.pipeline.name,
                tags.VERSION: __version__,
                **code,
                **lock,
                **airflow,
            },
            parameters=self.effective,
        )
        self.tracker.start()

    # -- run ----------------------------------------------------------------------------------

    def reuse(self, hit: CacheHit) -> None:
        """Instead of running: the manifest of a ``cached`` attempt that stands for ``hit``, its
        metrics and parameters, and the upstream attempts the key was made of."""
        assert self.claimed is not None  # noqa: S101 - claim() ran
        self.outcome = Outcome(status=StageStatus.CACHED, evalue=hit.describe(), metrics=dict(hit.manifest.metrics))
        self.hit = hit
        self.mlflow_run_id = self._tracked_run()
        if self.mlflow_run_id:
            self.manifest = self._build_manifest(reused=hit)
            try:  # a no-op for a local store
                self.store.upload(self.claimed, self.manifest)
            except InfraError as exc:
                log(str(exc))
                self.manifest = None
                self.outcome.fail(StageStatus.UPLOAD_FAILED, "ArtifactStoreError", str(exc))
        if self.signals is not None:
            log(f"stage '{self.contract.stage.name}': reused {hit.describe()}; no notebook ran")

    def run(self) -> None:
        """Execute the notebook within the stage timeout; every outcome is recorded, none raised."""
        from nbops.notebook.execute import execute

        assert self.claimed is not None and self.tracker is not None and self.signals is not None  # noqa: S101
        tracker, stage = self.tracker, self.contract.stage
        self.signals.start_timer(stage.timeout - (time.monotonic() - self.started), limit=stage.timeout)
        path = self.contract.notebook.path

        def kernel_env() -> dict[str, str]:
            env = {**self.kernel_vars, "MLFLOW_RUN_ID": tracker.run_id()}
            tracker.warm()
            return env

        try:
            self.executed, self.outcome = execute(
                self.prepared,
                input_path=path,
                output_path=self.claimed.workdir / "output.ipynb",
                cwd=self.cwd(),
                cell_timeout=stage.cell_timeout,
                kernel_env=kernel_env,
                early_kernel=self.kernel,
            )
        except Terminated as exc:  # in the few statements before the engine took over
            self.outcome.stopped_by(exc)
        except Exception as exc:  # the kernel would not start, nbclient broke down, no MLflow run
            self.outcome.fail(StageStatus.INFRA_FAILED, type(exc).__name__, str(exc))
        finally:
            self.signals.defer()
            self.release_resources()

    # -- archive --------------------------------------------------------------------------------

    def archive(self) -> None:
        """Export the readable HTML, list a success's files in its manifest, copy the attempt (and the
        source notebook, by content) to the store."""
        assert self.claimed is not None  # noqa: S101 - claim() ran
        if self.executed is not None and self.tracker is not None:
            try:
                page = self.tracker.to_html(self.executed)
            except InfraError as exc:  # the recording runner failed or went away; the record step says so
                log(f"the readable HTML was not written: {exc}")
            else:
                write_atomic(self.claimed.workdir / "output.html", page.encode("utf-8"))
        self.mlflow_run_id = self._tracked_run()
        if self.outcome.status.succeeded and self.mlflow_run_id:
            self.manifest = self._build_manifest()
        try:  # a no-op for a local store; a success exactly as listed, anything else as it is
            if not self.pipeline.frozen:  # the source bytes by content, for the audit (promote stored a DAG's)
                self.store.publish(notebook_rel(self.contract.notebook.sha256), self.contract.notebook.raw)
            self.store.upload(self.claimed, self.manifest)
        except InfraError as exc:
            log(str(exc))
            if self.manifest is not None:
                self.manifest = None  # never sealed: the store lacks what it would list
                self.outcome.fail(StageStatus.UPLOAD_FAILED, "ArtifactStoreError", str(exc))

    # -- record ---------------------------------------------------------------------------------

    def record(self) -> None:
        """Metrics, tags, the executed notebook and the manifest into the MLflow stage run.

        A success is left open: :meth:`seal` closes it once the manifest is stored.
        """
        assert self.claimed is not None and self.tracker is not None  # noqa: S101 - claim() ran
        if not self.mlflow_run_id:
            return
        out = self.outcome
        run_tags = {tags.STATUS: out.status.value}
        if self.hit is not None:
            run_tags[tags.REUSED_RUN] = self.hit.run_id
            run_tags[tags.REUSED_ATTEMPT] = layout.attempt_rel(
                self.pipeline.name, self.hit.run_id, self.contract.stage.name, self.hit.manifest.attempt
            )
            run_tags[tags.REUSED_MLFLOW_RUN] = self.hit.manifest.mlflow_run_id
        if self.cache_key:
            run_tags[tags.CACHE_KEY] = self.cache_key
        if not out.status.succeeded:
            run_tags[tags.FAILED_CELL] = str(out.cell_index)
            run_tags[tags.ERROR] = out.ename
            run_tags[tags.ERROR_MESSAGE] = self.message()[: tags.ERROR_MESSAGE_LIMIT]
            if out.execution_count is not None:
                run_tags[tags.FAILED_EXECUTION_COUNT] = str(out.execution_count)
            if out.limit is not None:
                run_tags[tags.TIMEOUT_LIMIT] = f"{out.limit:g}"
            if out.status is StageStatus.KILLED and out.evalue:
                run_tags[tags.SIGNAL] = out.evalue
        workdir = self.claimed.workdir
        try:
            self.tracker.finish(
                Recording(
                    status=out.status.mlflow_status,
                    metrics=out.metrics,
                    tags=run_tags,
                    files=[workdir / "output.ipynb", workdir / "output.html"],
                    manifest=self.manifest,
                    inputs=self.consumed,
                    version_tags=self._version_tags() if self.hit is None else {},  # a reuse registers nothing
                    close=self.manifest is None,
                )
            )
        except InfraError as exc:
            log(str(exc))
            self.manifest = None  # never sealed without its record
            if self.outcome.status.succeeded:
                self.outcome.fail(StageStatus.INFRA_FAILED, "TrackingStoreError", str(exc))

    # -- seal -----------------------------------------------------------------------------------

    def seal(self) -> None:
        """Write the manifest (the proof the attempt finished), then close the record ``FINISHED``."""
        if self.manifest is None or self.claimed is None or self.tracker is None:
            return
        try:
            self.store.seal(self.claimed, self.manifest)
        except NbopsError as exc:
            log(str(exc))
            self.manifest = None
            self.outcome.fail(StageStatus.SEAL_FAILED, "ArtifactStoreError", str(exc))
            self.tracker.mark_failed(self.outcome.status.value, exc)
            return
        try:
            cache.remember(self.store, self.manifest)
        except InfraError as exc:  # the attempt stands; it is only not reusable
            log(f"{exc}; the attempt is not indexed for reuse")
        try:
            self.tracker.close(self.outcome.status.mlflow_status)
        except InfraError as exc:  # the manifest stands; the record says RUNNING until a retry
            log(f"{exc}; the attempt's manifest is stored, its MLflow run could not be closed")
            self.outcome.fail(StageStatus.INFRA_FAILED, "TrackingStoreError", str(exc))

    # -- outcome --------------------------------------------------------------------------------

    def result(self) -> StageResult:
        """How the attempt ended."""
        return StageResult(
            stage=self.contract.stage.name,
            run_id=self.request.run_id,
            status=self.outcome.status,
            attempt=self.claimed.number if self.claimed else None,
            attempt_dir=self.claimed.location if self.claimed else None,
            mlflow_run_id=self.mlflow_run_id,
            duration_s=round(time.monotonic() - self.started, 3),
            message=self.message(),
            failed_cell=self.outcome.cell_index,
            phases=dict(self.phases),
        )

    def message(self) -> str:
        """One sentence for logs, results and the record, secrets masked."""
        return self.redactor.text(self.outcome.message)

    def _tracked_run(self) -> str | None:
        """The MLflow stage run, or None (and the attempt failed) when set-up never got one."""
        assert self.tracker is not None  # noqa: S101 - claim() ran
        try:
            return self.tracker.run_id()
        except InfraError as exc:
            if self.outcome.status.succeeded or self.outcome.status is StageStatus.INFRA_FAILED:
                self.outcome.fail(StageStatus.INFRA_FAILED, "TrackingStoreError", str(exc))
            return None

    def _version_tags(self) -> dict[str, str]:
        """What a model version registered by this attempt is tagged with (DESIGN §8)."""
        values = {
            tags.PIPELINE: self.pipeline.name,
            tags.RUN_ID: self.request.run_id,
            tags.STAGE: self.contract.stage.name,
            tags.STAGE_RUN: self.mlflow_run_id or "",
            tags.NOTEBOOK_SHA256: self.contract.notebook.sha256,
            tags.LOCK_SHA256: self.request.promoted or "",
            tags.GIT_COMMIT: self.git.commit,
            tags.GIT_DIRTY: tags.flag(self.git.dirty),
        }
        return {k: v for k, v in values.items() if v}

    def _build_manifest(self, reused: CacheHit | None = None) -> Manifest:
        assert self.claimed is not None  # noqa: S101 - claim() ran
        stage = self.contract.stage
        return build_manifest(
            self.claimed.workdir,
            pipeline=self.pipeline.name,
            run_id=self.request.run_id,
            stage=stage.name,
            attempt=self.claimed.number,
            status=self.outcome.status.value,
            notebook=NotebookRef(path=stage.notebook, sha256=self.contract.notebook.sha256),
            parameters=self.effective,
            metrics=self.outcome.metrics,
            image=image(),
            environment=environment.current().description,
            packages_sha256=environment.current().packages_sha256,
            lock_sha256=self.request.promoted,
            git_commit=self.git.commit,
            git_dirty=self.git.dirty,
            mlflow_run_id=self.mlflow_run_id or "",
            finished_at=datetime.now(UTC).isoformat(),
            nbops_version=__version__,
            inputs=self.consumed,
            cache_key=self.cache_key,
            reused=reused.reused() if reused is not None else None,
        )


def _materialize(files: tuple[FrozenFile, ...], root: Path) -> None:
    """Copy each promoted file to its place under ``root``, refusing bytes that do not hash to
    what was promoted.

    Raises:
        InfraError: a file is not in the artifact store (yet).
        InputError: a file's bytes were changed after ``nbops promote``.
    """
    import hashlib

    for frozen in files:
        try:
            data = frozen.source.read_bytes()
        except FileNotFoundError:
            raise InfraError(
                f"{frozen.source}: '{frozen.path}', promoted with the notebook, is not in the artifact store; "
                "publish it (nbops promote with this NBOPS_ARTIFACT_ROOT) before the DAG runs."
            ) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != frozen.sha256:
            raise InputError(
                f"{frozen.source}: '{frozen.path}' has sha256 {actual}, not {frozen.sha256} as promoted; the "
                "published file was changed after `nbops promote`. Nothing was run; promote the pipeline again."
            )
        target = root / frozen.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def image() -> str | None:
    """The container image the stage runs in (named in pods), else None: a local run records
    its Python environment instead (:mod:`nbops.environment`)."""
    return os.environ.get(ENV_IMAGE, "").strip() or None


def airflow_tags() -> dict[str, str]:
    """The Airflow DAG run and try the stage runs in, when it runs under Airflow."""
    names = {"dag_id": tags.AIRFLOW_DAG_ID, "run_id": tags.AIRFLOW_RUN_ID, "try_number": tags.AIRFLOW_TRY_NUMBER}
    return {tag: os.environ[ENV_AIRFLOW[key]] for key, tag in names.items() if os.environ.get(ENV_AIRFLOW[key])}


def _load(request: StageRequest) -> tuple[Pipeline, GitState]:
    """The pipeline from the working tree, or the promoted one whose lock hash was given, and
    the commit its code came from (the work tree's, or the one promote recorded in the lock)."""
    if request.promoted is None:
        if request.pipeline_file is None:
            raise InputError("exec-stage needs --pipeline FILE or --promoted LOCK_SHA256.")
        pipeline = load_pipeline(request.pipeline_file)
        return pipeline, git_state(pipeline.root)
    unset = [v for v in (layout.ENV_ARTIFACT_ROOT, ENV_TRACKING_URI) if not os.environ.get(v, "").strip()]
    if unset:
        raise InputError(
            f"--promoted {request.promoted}: {' and '.join(unset)} must be set; a promoted stage reads its notebook "
            "from the artifact store and records into the tracking server the deployment names (the DAG sets both)."
        )
    lock, path = fetch_lock(open_store(Path.cwd()), request.promoted)
    return lock.pipeline(path, open_store(Path.cwd()), request.stage), GitState(lock.git_commit, lock.git_dirty)


def _upstream_attempts(
    store: Store, pipeline: Pipeline, run_id: str, stage: str
) -> dict[str, tuple[Path, ManifestInput]]:
    """Outputs of every completed ancestor in this run, and which attempt each came from (its
    manifest's hash as stored); a missing direct need is an input error."""
    found: dict[str, tuple[Path, ManifestInput]] = {}
    missing = []
    needs = pipeline.stage(stage).needs
    for up in sorted(ancestors(pipeline.needs(), stage)):
        done = store.completed(pipeline.name, run_id, up)
        if done is not None:
            found[up] = _resolved(store, pipeline.name, run_id, up, done)
        elif up in needs:
            missing.append(up)
    if missing:
        names = ", ".join(f"'{m}'" for m in missing)
        raise InputError(
            f"stage '{stage}' needs {names}, which has no completed attempt (no manifest.json) in run {run_id} "
            f"under {store.run_location(pipeline.name, run_id)}. Run the upstream stage(s) first, "
            f"e.g. nbops run --run-id {run_id} --from {missing[0]}."
        )
    return found


ENV_CHAMPION_RUN = "NBOPS_CHAMPION_RUN"
"""Set by ``nbops monitor``: the pipeline run that trained the champion, which it has looked up already."""


def _champion_attempts(store: Store, pipeline: Pipeline, uri: str) -> dict[str, tuple[Path, ManifestInput]]:
    """For the monitor: every completed stage of the pipeline run that trained the current champion
    (``nbops.input_dir(stage)`` in the monitor notebook), found through the registry's lineage.

    Raises:
        InputError: there is no champion yet, or its run left no completed attempts here.
    """
    retrain = pipeline.spec.retrain
    assert retrain is not None  # noqa: S101 - the spec requires `retrain:` with `monitor:`
    champion_run = os.environ.get(ENV_CHAMPION_RUN, "").strip()
    if not champion_run:
        from nbops.tracking.gate import champion_run_id
        from nbops.tracking.store import open_client

        champion_run = champion_run_id(open_client(uri), retrain.model) or ""
    if not champion_run:
        raise InputError(
            f"{pipeline.path}: '{retrain.model}' has no champion yet, so the monitor has no training data to compare "
            "with; run the pipeline first (its gate makes the first version champion)."
        )
    found = {}
    for stage in pipeline.spec.stages:
        done = store.completed(pipeline.name, champion_run, stage)
        if done is not None:
            found[stage] = _resolved(store, pipeline.name, champion_run, stage, done)
    if not found:
        raise InputError(
            f"the champion of '{retrain.model}' was trained by run {champion_run}, which has no completed attempt "
            f"under {store.run_location(pipeline.name, champion_run)}; the monitor cannot read its training data."
        )
    return found


def _resolved(store: Store, pipeline: str, run_id: str, stage: str, done: Path) -> tuple[Path, ManifestInput]:
    """The outputs an upstream attempt stands for and the attempt to name as consumed: itself, or
    for a ``cached`` attempt the one it reused (so that keys and lineage name the attempt that ran).

    Raises:
        InputError: the reused attempt is gone from the store or unreadable.
    """
    from nbops.storage.manifest import read_manifest

    manifest = read_manifest(done)
    reused = manifest.reused
    if reused is None:
        return done / "outputs", _consumed(store, pipeline, run_id, stage, done)
    original = store.attempt_dir(pipeline, reused.run_id, stage, reused.attempt)
    if original is None:
        raise InputError(
            f"{done}: stage '{stage}' reused attempt {reused.attempt} of run {reused.run_id}, which has no manifest "
            f"in the store any more ({reused.location}); re-run it with nbops run --force {stage}."
        )
    consumed = ManifestInput(
        stage=stage, attempt=reused.attempt, manifest_sha256=reused.manifest_sha256, location=reused.location
    )
    return original / "outputs", consumed


def _consumed(store: Store, pipeline: str, run_id: str, stage: str, attempt_dir: Path) -> ManifestInput:
    """The upstream attempt in ``attempt_dir`` as a manifest input: the sha256 of its stored manifest bytes
    (the store checked and parsed them when it returned the attempt)."""
    from nbops.storage.manifest import file_sha256

    number = layout.attempt_number(attempt_dir)
    return ManifestInput(
        stage=stage,
        attempt=number,
        manifest_sha256=file_sha256(attempt_dir / layout.MANIFEST),
        location=store.location(layout.attempt_rel(pipeline, run_id, stage, number)),
    )
