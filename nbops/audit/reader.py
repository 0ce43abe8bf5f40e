"""Read one tracking store for the audit: runs as :class:`~nbops.audit.lineage.RunRecord`, paged
searches, model versions and artifacts. It only reads: what does not exist is None (for a model,
a message says what does); a pipeline run id that names no run, or several pipelines' runs, is
an InputError; an unreachable store is an InfraError."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from nbops.audit.lineage import DatasetRecord, ModelInfo, RunRecord, iso
from nbops.audit.refs import ModelRef
from nbops.errors import InfraError, InputError, NbopsError
from nbops.sweep import unit
from nbops.tracking import record, tags
from nbops.tracking.store import quiet_downloads, redact_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion

T = TypeVar("T")

STAGE_KIND = "stage"
PIPELINE_KIND = "pipeline"
INTERACTIVE_KIND = "interactive"
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})
_SEARCH_PAGE = 1000
_EXPERIMENT_CHUNK = 50


class TrackingReader:
    """Reads one tracking store, each run once; use as a context manager (artifacts are
    downloaded to a temporary directory removed on exit)."""

    def __init__(self, client: MlflowClient) -> None:
        self.client = client
        self.uri = redact_uri(str(client.tracking_uri))
        """The store's URI, password masked."""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._runs: dict[str, RunRecord | None] = {}

    def __enter__(self) -> TrackingReader:
        self._tmp = tempfile.TemporaryDirectory(prefix="nbops-audit-")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- model registry --------------------------------------------------------------------------

    def model_version(self, ref: ModelRef) -> ModelInfo | None:
        """The model version ``ref`` names, None when the registry has no such version or alias."""
        if ref.version is not None:
            found = _lookup(self.client.get_model_version, ref.name, ref.version, what=f"read model version {ref}")
        else:
            found = _lookup(
                self.client.get_model_version_by_alias, ref.name, ref.alias, what=f"read model version {ref}"
            )
        return _model_info(found) if found is not None else None

    def unknown_model(self, ref: ModelRef) -> str:
        registered = _lookup(self.client.get_registered_model, ref.name, what=f"read registered model '{ref.name}'")
        where = f"the MLflow tracking store {self.uri}"
        if registered is None:
            return f"model {ref}: there is no registered model '{ref.name}' in {where}."
        if ref.alias is not None:
            aliases = dict(registered.aliases or {})
            known = ", ".join(f"{a} -> version {v}" for a, v in sorted(aliases.items())) or "it has none"
            return f"model {ref}: registered model '{ref.name}' has no alias '{ref.alias}' (aliases: {known})."
        versions = sorted(
            int(v.version)
            for v in _call(
                self.client.search_model_versions,
                f"name = '{ref.name}'" if "'" not in ref.name else "",
                what=f"list the versions of '{ref.name}'",
            )
            if v.name == ref.name
        )
        known = ", ".join(map(str, versions)) or "none"
        return f"model {ref}: registered model '{ref.name}' has no version {ref.version} (versions: {known})."

    # -- runs ---------------------------------------------------------------------------------------

    def run(self, run_id: str) -> RunRecord | None:
        if run_id not in self._runs:
            run = _lookup(self.client.get_run, run_id, what=f"read MLflow run {run_id}")
            self._runs[run_id] = _run_record(run) if run is not None else None
        return self._runs[run_id]

    def full(self, run: RunRecord) -> RunRecord:
        """The run as ``get_run`` returns it (search results may leave out dataset inputs)."""
        return self.run(run.run_id) or run

    def parent_of(self, run: RunRecord) -> RunRecord | None:
        parent_id = run.tag(tags.PARENT_RUN)
        if parent_id:
            return self.run(parent_id)
        if not run.tag(tags.RUN_ID):
            return None
        found = self.search(
            [run.experiment_id],
            f"tags.`{tags.RUN_ID}` = '{_unquoted(run.tag(tags.RUN_ID))}' and tags.`{tags.KIND}` = '{PIPELINE_KIND}'",
            what="search for the pipeline run",
        )
        return _oldest(found)

    def find_pipeline_run(self, run_id: str, prefer_pipeline: str | None) -> RunRecord:
        if not run_id.strip() or "'" in run_id or "\\" in run_id:
            raise InputError(f"'{run_id}' is not an nbops run id (e.g. 20261123T101500Z-3f9a1c or manual__...).")
        experiments = self.experiments()
        where = f"the MLflow tracking store {self.uri}"
        found = self.search(
            experiments,
            f"tags.`{tags.RUN_ID}` = '{run_id}' and tags.`{tags.KIND}` = '{PIPELINE_KIND}'",
            what=f"search for pipeline run {run_id}",
        )
        if not found:
            raise InputError(
                f"run {run_id}: no pipeline run with this nbops run id in {where}. Give the nbops run id "
                "(as `nbops run` prints it or the Airflow DAG run id), not an MLflow run id."
            )
        by_pipeline: dict[str, list[RunRecord]] = {}
        for run in found:
            by_pipeline.setdefault(run.tag(tags.PIPELINE), []).append(run)
        if len(by_pipeline) > 1:
            if prefer_pipeline in by_pipeline:
                return _oldest(by_pipeline[prefer_pipeline]) or found[0]
            names = ", ".join(sorted(by_pipeline))
            raise InputError(
                f"run {run_id}: pipelines {names} all have a run with this id in {where}; run the audit "
                "from the directory of the pipeline meant (or pass its pipeline file)."
            )
        return _oldest(found) or found[0]

    def experiments(self) -> list[str]:
        return [str(e.experiment_id) for e in _pages(self.client.search_experiments, what="list experiments")]

    def search(self, experiment_ids: list[str], filter_string: str, *, what: str) -> list[RunRecord]:
        found: list[RunRecord] = []
        for start in range(0, len(experiment_ids), _EXPERIMENT_CHUNK):
            chunk = experiment_ids[start : start + _EXPERIMENT_CHUNK]
            found.extend(
                _run_record(r) for r in _pages(self.client.search_runs, chunk, filter_string=filter_string, what=what)
            )
        return found

    def stage_runs(self, parent: RunRecord) -> dict[tuple[str, int], RunRecord]:
        """The pipeline run's stage runs by (stage, attempt), a swept stage's point by
        (``stage/point-<id>``, attempt); of duplicates, the newest wins."""
        runs = self.search(
            [parent.experiment_id],
            f"tags.`{tags.PARENT_RUN}` = '{parent.run_id}'",
            what="list the stage runs",
        )
        index: dict[tuple[str, int], RunRecord] = {}
        for run in sorted(runs, key=lambda r: (r.start_time or 0, r.run_id)):
            stage, attempt = run.tag(tags.STAGE), parse_int(run.tag(tags.ATTEMPT))
            if run.tag(tags.KIND) == STAGE_KIND and stage and attempt is not None:
                index[(unit(stage, run.tag(tags.POINT_ID) or None), attempt)] = run
        return index

    # -- artifacts ----------------------------------------------------------------------------------

    def artifact(self, run_id: str, path: str) -> bytes | None:
        """An artifact's bytes, or None when the run has no such artifact."""
        folder = path.rpartition("/")[0] or None
        listed = _call(self.client.list_artifacts, run_id, folder, what=f"list the artifacts of run {run_id}")
        if not any(info.path == path and not info.is_dir for info in listed):
            return None
        assert self._tmp is not None, "TrackingReader used outside its context"  # noqa: S101 - programming error
        target = tempfile.mkdtemp(dir=self._tmp.name)
        with quiet_downloads():
            local = _call(self.client.download_artifacts, run_id, path, target, what=f"download {path} of run {run_id}")
        return Path(local).read_bytes()

    def model_files(self, name: str, version: str) -> tuple[Path | None, dict[str, str], str]:
        """Model version ``name/version`` as the registry has it now: the directory its files were
        downloaded to, its tags, and ``""`` (else why it could not be read, and no directory)."""
        from nbops import modelseal

        found = _lookup(self.client.get_model_version, name, version, what=f"read model version {name}/{version}")
        if found is None:
            return None, {}, f"the registry has no model version {name}/{version}"
        assert self._tmp is not None, "TrackingReader used outside its context"  # noqa: S101 - programming error
        try:
            directory = modelseal.download(self.client, name, version, Path(tempfile.mkdtemp(dir=self._tmp.name)))
        except NbopsError as exc:  # gone (EvidenceError) or unreadable (InfraError): the check fails either way
            return None, dict(found.tags), exc.message
        return directory, dict(found.tags), ""


def _call(fn: Callable[..., T], *args: Any, what: str, **kwargs: Any) -> T:
    return record.call(fn, *args, what=what, **kwargs)


def _pages(fn: Callable[..., Any], *args: Any, what: str, **kwargs: Any) -> Iterator[Any]:
    """Every item of a paged MLflow search, page after page."""
    token: str | None = None
    while True:
        page = _call(fn, *args, max_results=_SEARCH_PAGE, page_token=token, what=what, **kwargs)
        yield from page
        token = page.token
        if not token:
            return


def _lookup(fn: Callable[..., T], *args: Any, what: str) -> T | None:
    """The result, or None when MLflow says the thing does not exist."""
    try:
        return record.call(fn, *args, what=what)
    except InfraError as exc:
        if getattr(exc.__cause__, "error_code", "") in _NOT_FOUND:
            return None
        raise


def _run_record(run: Run) -> RunRecord:
    inputs = run.inputs.dataset_inputs if run.inputs is not None else []
    datasets = tuple(
        DatasetRecord(
            name=str(item.dataset.name),
            digest=str(item.dataset.digest),
            profile=str(item.dataset.profile or ""),
            source=str(item.dataset.source or ""),
            context=next((str(t.value) for t in item.tags if t.key == tags.DATASET_CONTEXT), ""),
        )
        for item in inputs
    )
    return RunRecord(
        run_id=str(run.info.run_id),
        experiment_id=str(run.info.experiment_id),
        status=str(run.info.status),
        start_time=run.info.start_time,
        end_time=run.info.end_time,
        tags=dict(run.data.tags),
        params=dict(run.data.params),
        metrics={k: float(v) for k, v in run.data.metrics.items()},
        datasets=datasets,
    )


def _model_info(version: ModelVersion) -> ModelInfo:
    return ModelInfo(
        name=str(version.name),
        version=str(version.version),
        aliases=tuple(sorted(str(a) for a in (version.aliases or []))),
        registered_at=iso(version.creation_timestamp),
        source=str(version.source or ""),
        source_run=str(version.run_id or ""),
        tags=dict(version.tags or {}),
    )


def _oldest(runs: list[RunRecord]) -> RunRecord | None:
    """Of duplicate parent runs every reader picks the oldest (as ``pipeline_run.find`` does)."""
    return min(runs, key=lambda r: (r.start_time or 0, r.run_id), default=None)


def parse_int(text: str) -> int | None:
    """The number a tag spells, None when it spells none."""
    try:
        return int(text)
    except ValueError:
        return None


def _unquoted(text: str) -> str:
    return text.replace("'", "")


__all__ = ["INTERACTIVE_KIND", "PIPELINE_KIND", "STAGE_KIND", "TrackingReader", "parse_int"]
