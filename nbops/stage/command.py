"""``nbops exec-stage``: execute one stage attempt of one pipeline run.

Order matters: every check that can fail on bad input runs before an attempt directory is
claimed or a kernel starts; MLflow set-up overlaps kernel start-up; the executed notebook
is archived whatever happens; the manifest is written last and only on success.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nbops import __version__
from nbops.context import ENV_TRIGGER, StageContext, airflow_tags, git_commit
from nbops.errors import EXIT_INFRA, EXIT_NOTEBOOK, EXIT_OK, InfraError, InputError, NbopsError
from nbops.graph import ancestors
from nbops.lock import load_published
from nbops.notebook.redact import Redactor
from nbops.spec import Pipeline, load_pipeline
from nbops.stage.contract import load_contract
from nbops.storage import layout
from nbops.storage.manifest import build_manifest
from nbops.storage.store import Store, open_store
from nbops.tracking.store import ENV_TRACKING_URI, tracking_uri

STATUS_EXIT = {"succeeded": EXIT_OK, "stopped": EXIT_OK, "failed": EXIT_NOTEBOOK, "timed_out": EXIT_NOTEBOOK}
MLFLOW_STATUS = {"succeeded": "FINISHED", "stopped": "FINISHED"}


@dataclass(frozen=True)
class StageRequest:
    """Everything ``nbops exec-stage`` was asked to do."""

    pipeline_file: Path | None
    stage: str
    run_id: str
    params: dict[str, Any] = field(default_factory=dict)
    image: str | None = None
    promoted: str | None = None


@dataclass
class StageResult:
    """What happened, for the runner's summary and the ``--result-file``."""

    stage: str
    run_id: str
    status: str
    exit_code: int
    attempt: int | None = None
    attempt_dir: str | None = None
    mlflow_run_id: str | None = None
    duration_s: float = 0.0
    message: str = ""
    failed_cell: int | None = None

    def to_json(self) -> str:
        """The result as one JSON document."""
        return json.dumps(asdict(self), sort_keys=True)


def log(message: str) -> None:
    """Progress lines of the stage command go to stderr, prefixed for grep."""
    print(f"nbops: {message}", file=sys.stderr, flush=True)


def exec_stage(request: StageRequest) -> StageResult:
    """Run one stage attempt; input problems raise InputError before anything starts."""
    started = time.monotonic()
    pipeline = _load(request)
    contract = load_contract(pipeline, request.stage, request.params)
    stage, notebook, params, where = contract.stage, contract.notebook, contract.params, contract.where
    nb_path = notebook.path

    from nbops.notebook.execute import parameterize

    prepared = parameterize(notebook.node, params, where)
    # What the notebook runs with: its defaults under the injected values. Recorded in full, so
    # a run's record reads the same whichever backend injected which subset.
    redactor = Redactor.from_env()
    effective = redactor.value({**contract.schema.defaults, **params})
    store = open_store(pipeline.root)
    inputs = _upstream_outputs(store, pipeline.name, request.run_id, stage.name, stage.needs, pipeline.needs())
    state = layout.state_dir(pipeline.root)
    uri = tracking_uri(state)
    claimed = store.claim(pipeline.name, request.run_id, stage.name)
    number, attempt = claimed.number, claimed.workdir
    outputs = attempt / "outputs"
    outputs.mkdir()
    log(f"stage '{stage.name}' of run {request.run_id}: attempt {number} in {claimed.location}")

    ctx = StageContext(pipeline.name, request.run_id, stage.name, number, outputs, inputs)
    os.environ.update(ctx.to_env())
    os.environ[ENV_TRACKING_URI] = uri

    from nbops.stage.tracker import StageTracker

    image = request.image or stage.image
    tracker = StageTracker(
        uri=uri,
        experiment=pipeline.name,
        artifact_location=store.mlflow_location,
        run_id=request.run_id,
        stage=stage.name,
        attempt=number,
        parent_tags={
            "nbops.spec_sha256": pipeline.sha256,
            "nbops.git_commit": "unknown" if request.promoted else git_commit(pipeline.root),
            "nbops.trigger": os.environ.get(ENV_TRIGGER, "exec-stage"),
            **airflow_tags(),
            **({"nbops.lock_sha256": request.promoted} if request.promoted else {}),
        },
        stage_tags={
            "nbops.notebook.path": stage.notebook,
            "nbops.notebook.sha256": notebook.sha256,
            "nbops.image": image,
            "nbops.run_id": request.run_id,
            "nbops.pipeline": pipeline.name,
            "nbops.version": __version__,
            **airflow_tags(),
        },
        parameters=effective,
    )
    tracker.start()

    output_nb = attempt / "output.ipynb"
    output_html = attempt / "output.html"
    status, failed_cell, ename, evalue, metrics = "succeeded", None, "", "", {}
    # A promoted notebook sits in the shared store: it runs in a scratch directory instead.
    scratch = tempfile.TemporaryDirectory(prefix="nbops-cwd-") if pipeline.frozen else None
    from nbops.notebook.engine import Terminated

    term = _TermGuard(Terminated)
    try:
        from nbops.notebook.execute import execute

        executed, outcome = execute(
            prepared,
            input_path=nb_path,
            output_path=output_nb,
            cwd=Path(scratch.name) if scratch else nb_path.parent,
            cell_timeout=stage.cell_timeout,
            kernel_env=lambda: {"MLFLOW_RUN_ID": tracker.run_id()},
        )
        status, failed_cell, ename, evalue = outcome.status, outcome.cell_index, outcome.ename, outcome.evalue
        metrics = outcome.metrics
    except Terminated:  # before or between cells: nothing was running
        status, ename, evalue = "killed", "Terminated", "SIGTERM before a cell ran"
        executed = None
    except NbopsError as exc:
        status, ename, evalue = "infra_failed", type(exc).__name__, str(exc)
        executed = None
    except Exception as exc:  # kernel would not start, or nbclient broke down
        status, ename, evalue = "infra_failed", type(exc).__name__, str(exc)
        executed = None
    finally:
        term.disarm()
        if scratch is not None:
            scratch.cleanup()

    if executed is not None:
        from nbops.notebook.html import to_html

        output_html.write_text(to_html(executed), encoding="utf-8")

    mlflow_run = tracker.run_id()  # raises InfraError when there is no record to finish
    manifest = None
    if status in MLFLOW_STATUS:
        manifest = build_manifest(
            attempt,
            {
                "pipeline": pipeline.name,
                "run_id": request.run_id,
                "stage": stage.name,
                "attempt": number,
                "status": status,
                "notebook": {"path": stage.notebook, "sha256": notebook.sha256},
                "parameters": effective,
                "metrics": metrics,
                "image": image,
                "mlflow_run_id": mlflow_run,
                "finished_at": datetime.now(UTC).isoformat(),
                "nbops_version": __version__,
            },
        )
    try:  # archive the attempt whatever its outcome (a no-op for a local store); a success, exactly as listed
        store.upload(claimed, manifest)
    except InfraError as exc:
        log(str(exc))
        if manifest is not None:
            status, ename, evalue, manifest = "upload_failed", "ArtifactStoreError", str(exc), None

    succeeded = status in MLFLOW_STATUS
    tags = {"nbops.status": status}
    if not succeeded:
        evalue = redactor.text(evalue)
        tags.update({"nbops.failed_cell": str(failed_cell), "nbops.error": ename, "nbops.error_message": evalue[:500]})
    mlflow_status = "KILLED" if status == "killed" else MLFLOW_STATUS.get(status, "FAILED")
    tracker.finish(
        status=mlflow_status,
        metrics=metrics,
        tags=tags,
        files=[output_nb, output_html],
        manifest=manifest,
        close=manifest is None,
    )
    if manifest is not None:  # manifest, then FINISHED: the record never claims a success the store lacks
        try:
            store.seal(claimed, manifest)
        except NbopsError as exc:
            tracker.mark_failed("seal_failed", exc)
            raise
        tracker.close(mlflow_status)

    exit_code = STATUS_EXIT.get(status, EXIT_INFRA)
    message = {
        "succeeded": "succeeded",
        "stopped": f"stopped early by sys.exit(0) in cell {failed_cell}",
        "failed": f"cell {failed_cell} raised {ename}: {evalue}",
        "timed_out": f"cell {failed_cell} exceeded the cell timeout of {stage.cell_timeout} s",
        "kernel_died": f"the kernel died while cell {failed_cell} ran",
        "killed": f"terminated (SIGTERM) while cell {failed_cell} ran; partial notebook archived",
    }.get(status, f"infrastructure failure: {evalue}")
    return StageResult(
        stage=stage.name,
        run_id=request.run_id,
        status=status,
        exit_code=exit_code,
        attempt=number,
        attempt_dir=claimed.location,
        mlflow_run_id=mlflow_run,
        duration_s=round(time.monotonic() - started, 3),
        message=message,
        failed_cell=failed_cell,
    )


class _TermGuard:
    """While cells run, SIGTERM raises ``exc`` in the main thread so the engine can stop the
    kernel, mark the running cell and let the stage archive and record (exit 3). Outside
    that window the default handling is restored."""

    def __init__(self, exc: type[BaseException]) -> None:
        self._previous: Any = None
        if threading.current_thread() is threading.main_thread():

            def on_term(signum: int, frame: Any) -> None:
                log("SIGTERM received: stopping the kernel, archiving the partial notebook")
                raise exc()

            self._previous = signal.signal(signal.SIGTERM, on_term)

    def disarm(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None


def _load(request: StageRequest) -> Pipeline:
    """The pipeline from the working tree, or the promoted one whose lock hash was given."""
    if request.promoted is None:
        if request.pipeline_file is None:
            raise InputError("exec-stage needs --pipeline FILE or --promoted LOCK_SHA256.")
        return load_pipeline(request.pipeline_file)
    unset = [v for v in (layout.ENV_ARTIFACT_ROOT, ENV_TRACKING_URI) if not os.environ.get(v, "").strip()]
    if unset:
        raise InputError(
            f"--promoted {request.promoted}: {' and '.join(unset)} must be set; a promoted stage reads its notebook "
            "from the artifact store and records into the tracking server the deployment names (the DAG sets both)."
        )
    return load_published(open_store(Path.cwd()), request.promoted, request.stage)


def _upstream_outputs(
    store: Store, pipeline: str, run_id: str, stage: str, needs: tuple[str, ...], graph: dict[str, tuple[str, ...]]
) -> dict[str, Path]:
    """Outputs of every completed ancestor in this run; a missing direct need is an input error."""
    found: dict[str, Path] = {}
    missing = []
    for up in sorted(ancestors(graph, stage)):
        done = store.completed(pipeline, run_id, up)
        if done is not None:
            found[up] = done / "outputs"
        elif up in needs:
            missing.append(up)
    if missing:
        names = ", ".join(f"'{m}'" for m in missing)
        raise InputError(
            f"stage '{stage}' needs {names}, which has no completed attempt (no manifest.json) in run {run_id} "
            f"under {store.run_location(pipeline, run_id)}. Run the upstream stage(s) first, "
            f"e.g. nbops run --run-id {run_id} --from {missing[0]}."
        )
    return found


def result_of_error(request: StageRequest, exc: NbopsError, started: float) -> StageResult:
    """A result for an attempt that failed before (or outside) execution."""
    return StageResult(
        stage=request.stage,
        run_id=request.run_id,
        status="input_error" if isinstance(exc, InputError) else "infra_failed",
        exit_code=exc.exit_code,
        duration_s=round(time.monotonic() - started, 3),
        message=str(exc),
    )


__all__ = ["StageRequest", "StageResult", "exec_stage", "result_of_error"]
