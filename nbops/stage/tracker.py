"""The MLflow side of one stage attempt, set up in a thread while the kernel boots."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.errors import InfraError
from nbops.retry import TRACKING_RECORD
from nbops.status import RunStatus
from nbops.tracking import pipeline_run, record, tags
from nbops.tracking.sqlite_client import SqliteClient, record_client
from nbops.tracking.store import open_client, warm_mlflow

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from nbformat import NotebookNode

    from nbops.storage.manifest import Manifest, ManifestInput, SealedModel


@dataclass(frozen=True)
class Recording:
    """What an attempt's record gets once its notebook has run (see :meth:`StageTracker.finish`)."""

    status: str
    metrics: dict[str, float]
    tags: dict[str, str]
    files: list[Path]
    manifest: Manifest | None
    inputs: tuple[ManifestInput, ...] = ()
    version_tags: dict[str, str] = field(default_factory=dict)
    close: bool = True


class StageTracker:
    """Opens the store, finds the pipeline run and creates the stage run in the background.

    ``run_id()`` blocks until that is done and re-raises any failure as InfraError, so the
    kernel never runs a cell without a run to record into.
    """

    def __init__(
        self,
        *,
        uri: str,
        experiment: str,
        artifact_location: str | None,
        run_id: str,
        stage: str,
        attempt: int,
        parent_tags: dict[str, str],
        stage_tags: dict[str, str],
        parameters: dict[str, Any],
        point: tuple[int, str] | None = None,
        reuse: bool = False,
    ) -> None:
        self._args = (uri, experiment, artifact_location, run_id, stage, attempt, parent_tags, stage_tags, parameters)
        self._point = point
        """Of a swept stage: the point's index and id."""
        self._reuse = reuse
        """The record of a reused attempt: no notebook, no model, so all of it is written without MLflow
        where it can be (:mod:`nbops.tracking.sqlite_client`); an executed attempt's set-up only."""
        self._thread = threading.Thread(target=self._setup, name="nbops-tracking", daemon=True)
        self._error: BaseException | None = None
        self.client: MlflowClient | None = None
        self.parent_id = ""
        self.stage_run_id = ""

    def start(self) -> None:
        """Begin set-up in the background."""
        self._thread.start()

    def _setup(self) -> None:
        uri, experiment, location, run_id, stage, attempt, parent_tags, stage_tags, parameters = self._args
        try:
            client = record_client(uri, experiment, location) or open_client(uri)
            exp_id = record.ensure_experiment(client, experiment, location)
            self.parent_id = pipeline_run.get_or_create(client, exp_id, experiment, run_id, parent_tags)
            index, point_id = self._point if self._point is not None else (None, None)
            self.stage_run_id = record.start_stage_run(
                client, exp_id, self.parent_id, stage=stage, attempt=attempt, extra_tags=stage_tags, point=index
            )
            record.close_predecessors(client, exp_id, self.parent_id, stage, attempt, point_id)
            record.log_parameters(client, self.stage_run_id, parameters)
            self.client = client
        except BaseException as exc:  # re-raised in the caller's thread by run_id()
            self._error = exc

    def run_id(self) -> str:
        """The stage run id, once set-up has finished."""
        self._thread.join()
        if self._error is not None:
            if isinstance(self._error, InfraError):
                raise self._error
            raise InfraError(f"MLflow set-up failed: {self._error}") from self._error
        return self.stage_run_id

    def warm(self) -> None:
        """Cells are about to run: warm up the HTML export meanwhile. Not earlier, where its
        imports would compete with the MLflow set-up the first cell waits for."""
        from nbops.notebook import html

        html.prepare()
        warm_mlflow()

    def to_html(self, nb: NotebookNode) -> str:
        """The executed notebook as the readable, sanitized page archived beside it."""
        from nbops.notebook.html import to_html

        return to_html(nb)

    def seal_models(self, signing_key: str | None) -> tuple[SealedModel, ...]:
        """Seal the model versions the notebook registered (:func:`nbops.modelseal.seal_versions`),
        signing them with the key at ``signing_key`` when given; before the attempt's manifest is
        built, so that it lists them. The notebook has already run, so a store that drops out is
        given time to come back, as for the rest of the record (every step is idempotent).

        Raises:
            InfraError: the registry or the artifact store failed past the backoff, or signing did.
        """
        from nbops import modelseal

        key = Path(signing_key) if signing_key else None
        client, run = self._client(), self.run_id()
        return TRACKING_RECORD.call(
            lambda: modelseal.seal_versions(client, run, key), retry_on=lambda exc: isinstance(exc, InfraError)
        )

    def finish(self, outcome: Recording) -> None:
        """Record the outcome: metrics, tags, the upstream attempts consumed (as dataset inputs),
        artifacts, tags on any model version the notebook registered, then (``outcome.close``)
        the terminal status.

        The notebook has already run, so a store that drops out now is given time to come
        back: the whole record is retried with bounded backoff (every step is idempotent),
        then InfraError (exit 3) and no manifest. A success is recorded with ``close=False``
        and closed by ``close()`` once its manifest is stored, so that ``FINISHED`` is the last
        word and never stands for an attempt without a manifest.
        """
        self._with_backoff(lambda: self._record(outcome))

    def close(self, status: str) -> None:
        """Set the terminal status of a run recorded with ``close=False``."""
        self._with_backoff(lambda: record.finish_run(self._client(), self.run_id(), status))

    def _client(self) -> MlflowClient:
        """The client for what follows set-up: MLflow's own once a notebook ran (its record may hold
        files, models, metrics the notebook logged), opened then, while set-up did without it."""
        self.run_id()
        if self.client is None:
            raise InfraError("MLflow client missing after set-up")
        if not self._reuse and isinstance(self.client, SqliteClient):
            self.client = open_client(self._args[0])
        return self.client

    @staticmethod
    def _with_backoff(step: Callable[[], None]) -> None:
        TRACKING_RECORD.call(step, retry_on=lambda exc: isinstance(exc, InfraError))

    def _record(self, outcome: Recording) -> None:
        client, run = self._client(), self.run_id()
        record.log_batch(client, run, metrics=outcome.metrics, tags=outcome.tags)
        record.log_upstream(client, run, outcome.inputs)
        record.log_files(client, run, [f for f in outcome.files if f.exists()])
        if outcome.manifest is not None:
            text = outcome.manifest.to_bytes().decode("utf-8")
            record.call(client.log_text, run, text, "manifest.json", what="upload the manifest")
        record.tag_model_versions(client, run, outcome.version_tags, lambda: self._description(client, run, outcome))
        if outcome.close:
            record.finish_run(client, run, outcome.status)

    def _description(self, client: MlflowClient, run: str, outcome: Recording) -> str:
        """The lineage a registered version is described with: a pure function of what the stage
        process sent (its tags and parameters, the inputs it consumed) and of where the record is."""
        from nbops.stage.attempt_record import RunLinks, version_description

        _uri, _experiment, _location, _run_id, stage, attempt, _parent, stage_tags, parameters = self._args
        experiment_id = record.call(client.get_run, run, what="read the stage run").info.experiment_id
        run_tags = {tags.STAGE: stage, tags.ATTEMPT: str(attempt), **stage_tags}
        links = RunLinks(str(experiment_id), self.parent_id, run)
        return version_description(run_tags, parameters, outcome.inputs, links)

    def mark_failed(self, reason: str, exc: BaseException) -> None:
        """Best effort: close the record as failed (the artifact store did not take the manifest).

        The caller is already failing with exit 3; a store that is also down must not hide that.
        """
        try:
            client, run = self._client(), self.run_id()
            message = str(exc)[: tags.ERROR_MESSAGE_LIMIT]
            record.set_tags(client, run, {tags.STATUS: reason, tags.ERROR_MESSAGE: message})
            record.finish_run(client, run, RunStatus.FAILED)
        except Exception:  # noqa: S110 - the InfraError being raised says what went wrong
            pass
