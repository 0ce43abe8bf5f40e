"""The audit report: one typed document, rendered as text, JSON or HTML (built from a walked
and verified lineage by :func:`nbops.audit.build.build_report`).

JSON schema ``nbops.audit/1``
=============================

``AuditReport.to_json()`` writes one object. Fields are only ever added within version 1;
a removed or re-typed field makes ``nbops.audit/2``. Times are ISO 8601 with offset (UTC) or
null; hashes are full lowercase sha256 hex; ``""`` means "not recorded".

* ``schema``: always ``"nbops.audit/1"``.
* ``ok``: true when every check passed.
* ``subject``: what was audited.

  * ``kind``: ``"model"`` or ``"run"``; ``ref``: the reference or nbops run id as given.
  * ``tracking_uri`` (password masked) and ``artifact_store``: where the records were read.
  * ``model`` (null for a run): ``name``, ``version``, ``aliases`` (list), ``registered_at``,
    ``source`` (the version's source URI), ``source_run`` (its MLflow run id), ``tags``
    (the version's tags, object).

* ``pipeline_run`` (null when it could not be found): the MLflow parent run.

  * ``mlflow_run_id``, ``experiment_id``, ``pipeline``, ``run_id`` (nbops run id),
    ``trigger`` (``nbops run``, ``airflow``, ``exec-stage``), ``status`` (``succeeded``,
    ``failed``, ``killed``), ``mlflow_status``, ``started_at``, ``ended_at``.
  * ``spec`` / ``lock`` (null when unknown / not promoted): ``path``, ``sha256``,
    ``store_path`` (relative to the artifact root), ``location`` (path or URL),
    ``indexed`` (listed in ``pipeline/sources.json`` rather than derived from a hash).
  * ``spec_sha256``, ``lock_sha256``: the run's tags.
  * ``git_commit``, ``git_dirty`` (bool or null).
  * ``airflow`` (null outside Airflow): ``dag_id``, ``run_id``, ``logical_date``, ``conf``
    (the DAG run conf: parsed JSON, or the recorded text when it is not JSON), ``try_number``.
  * ``overrides``: ``{"stage.name": "value"}`` given with ``nbops run -p`` or the DAG conf.
  * ``reused``: ``["stage#attempt", ...]`` taken over from an earlier invocation.
  * ``who``: ``user`` and ``host`` (the OS user and host the run was started as and on),
    ``triggered_by`` (the Airflow user who triggered the DAG run), ``approved_by`` (who
    approved the gate's decision), ``image_digest`` (``""`` here).

* ``stages``: stage nodes, upstream first (every node after the attempts it consumed).

  * ``key`` (``stage#attempt``; ``stage#attempt@run`` for an attempt of another pipeline run,
    which a ``cached`` attempt reused; the stage alone when it never ran), ``stage``,
    ``attempt`` (int or null), ``role`` (``model``: the attempt that registered the model;
    ``stage``: the latest successful (else latest) attempt of a stage of the run;
    ``upstream``: an attempt reached through ``inputs``; ``reused``: the attempt a ``cached``
    attempt stands for), ``status`` (a stage status, ``not run``, ``running``), ``ok`` (every
    check of this node passed).
  * ``mlflow_run_id``, ``attempt_path`` (relative to the artifact root), ``location``.
  * ``notebook``: ``path``, ``sha256``, ``location`` of the content-addressed copy (or null).
  * ``parameters``: ``[{"name", "value", "source", "default", "spec"}]``; ``source`` is
    ``default`` (the notebook's own default), ``spec`` (``stages.<stage>.parameters``) or
    ``run date`` (the spec's value names ``${run_date}``, substituted), ``override``
    (``-p``/conf, or a value differing from all of these); ``default`` and ``spec`` are
    those values or null.
  * ``metrics``: ``{"name": float}``.
  * ``inputs``: ``[{"stage", "attempt", "manifest_sha256", "location"}]`` consumed;
    ``consumed_by``: keys of the nodes that consumed this one.
  * ``outputs``: ``[{"path", "size", "sha256"}]``, paths relative to the attempt.
  * ``image``, ``environment``, ``packages_sha256``, ``git_commit``, ``git_dirty``,
    ``lock_sha256``.
  * ``airflow`` (null outside Airflow): ``dag_id``, ``run_id``, ``try_number``
    (``logical_date`` and ``conf`` empty).
  * ``started_at``, ``ended_at`` (the MLflow run), ``finished_at`` (the manifest).
  * ``failure`` (null unless it failed): ``cell`` (0-based index in the source notebook),
    ``execution_count``, ``error`` (exception name), ``message``.
  * ``notes``: remarks that are not checks (e.g. why notebook defaults are unknown).
  * ``who`` (null when the stage has no run): as the pipeline run's, for this attempt; in a pod
    ``image_digest`` is the image the kubelet ran (``repo@sha256:...``) when it was read.
  * ``models``: ``[{"name", "version", "source", "files", "sha256", "signed"}]``, the model
    versions the attempt registered and sealed: the number of files, the digest of their list,
    whether a signature is stored beside them.
  * ``carried``: ``[{"path", "sha256", "location"}]``, the helper files the stage ran with and
    where their copies are.

* ``checks``: ``[{"subject", "ok", "detail", "scope", "location", "expected", "actual"}]``;
  ``scope`` is a node ``key``, ``"pipeline"`` or ``"model"``; a failure's ``detail`` names
  the location and the expected and actual values in full.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from nbops.audit import render
from nbops.audit.lineage import ModelInfo
from nbops.audit.verify import MODEL_SCOPE, PIPELINE_SCOPE, Check
from nbops.status import ExitCode

SCHEMA = "nbops.audit/1"

Origin = Literal["default", "spec", "run date", "override", "point"]
"""Where a parameter's value came from: the notebook's default, the spec, an override, or a sweep's point."""

__all__ = [
    "MODEL_SCOPE",
    "PIPELINE_SCOPE",
    "SCHEMA",
    "AirflowInfo",
    "AuditReport",
    "CarriedInfo",
    "Check",
    "FailureInfo",
    "InputInfo",
    "ModelInfo",
    "NotebookInfo",
    "OutputInfo",
    "ParameterInfo",
    "PipelineRunInfo",
    "SealedModelInfo",
    "SourceInfo",
    "StageNode",
    "Subject",
    "WhoInfo",
]


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Subject(_Doc):
    """What was audited."""

    kind: Literal["model", "run"]
    ref: str
    tracking_uri: str
    artifact_store: str
    model: ModelInfo | None = None


class SourceInfo(_Doc):
    """A content-addressed source of the run (the spec, the lock)."""

    path: str
    sha256: str
    store_path: str
    location: str
    indexed: bool


class AirflowInfo(_Doc):
    """The Airflow DAG run (and task try) a record belongs to."""

    dag_id: str
    run_id: str
    logical_date: str = ""
    conf: Any = None
    try_number: str = ""


class PipelineRunInfo(_Doc):
    """The pipeline (parent) run."""

    mlflow_run_id: str
    experiment_id: str
    pipeline: str
    run_id: str
    trigger: str
    status: str
    mlflow_status: str
    started_at: str | None
    ended_at: str | None
    spec: SourceInfo | None
    lock: SourceInfo | None
    spec_sha256: str
    lock_sha256: str
    git_commit: str
    git_dirty: bool | None
    airflow: AirflowInfo | None
    overrides: dict[str, str]
    reused: tuple[str, ...]
    who: WhoInfo | None = None


class WhoInfo(_Doc):
    """Who ran a run and where (``""``: not recorded)."""

    user: str = Field(description="The OS user the run's process ran as.")
    host: str = Field(description="The host it ran on.")
    triggered_by: str = Field(description="Who started it when that is not the OS user (the Airflow user).")
    approved_by: str = Field("", description="Who approved the gate's decision (pipeline runs with manual approval).")
    image_digest: str = Field("", description="The stage pod's image as the kubelet reported it (stages in pods).")


class SealedModelInfo(_Doc):
    """A model version the attempt registered and sealed."""

    name: str
    version: str
    source: str
    files: int
    sha256: str
    signed: bool


class CarriedInfo(_Doc):
    """A helper file the stage carried, stored by content."""

    path: str
    sha256: str
    location: str


class NotebookInfo(_Doc):
    """The notebook a stage ran."""

    path: str
    sha256: str
    location: str


class ParameterInfo(_Doc):
    """One effective parameter and where its value came from."""

    name: str
    value: Any
    source: Origin
    default: Any = None
    spec: Any = None


class InputInfo(_Doc):
    """An upstream attempt consumed."""

    stage: str
    attempt: int
    manifest_sha256: str
    location: str


class OutputInfo(_Doc):
    """A file of the attempt, as its manifest lists it."""

    path: str
    size: int
    sha256: str


class FailureInfo(_Doc):
    """How a failed attempt failed."""

    cell: str
    execution_count: str
    error: str
    message: str


class StageNode(_Doc):
    """One stage attempt of the lineage."""

    key: str
    stage: str
    attempt: int | None
    role: Literal["model", "stage", "upstream", "reused"]
    status: str
    ok: bool
    mlflow_run_id: str
    attempt_path: str
    location: str
    notebook: NotebookInfo | None
    parameters: tuple[ParameterInfo, ...]
    metrics: dict[str, float]
    inputs: tuple[InputInfo, ...]
    consumed_by: tuple[str, ...]
    outputs: tuple[OutputInfo, ...]
    image: str
    environment: str
    packages_sha256: str
    git_commit: str
    git_dirty: bool | None
    lock_sha256: str
    airflow: AirflowInfo | None
    started_at: str | None
    ended_at: str | None
    finished_at: str | None
    failure: FailureInfo | None
    notes: tuple[str, ...]
    who: WhoInfo | None = None
    models: tuple[SealedModelInfo, ...] = ()
    carried: tuple[CarriedInfo, ...] = ()


class AuditReport(_Doc):
    """The audit of one model version or pipeline run: its lineage and every check."""

    subject: Subject = Field(description="What was audited.")
    pipeline_run: PipelineRunInfo | None = Field(description="The pipeline (parent) run; None when not found.")
    stages: tuple[StageNode, ...] = Field(description="Stage nodes, upstream first.")
    checks: tuple[Check, ...] = Field(description="Every check, in report order.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """Every check passed."""
        return all(c.ok for c in self.checks)

    @property
    def exit_code(self) -> ExitCode:
        """``nbops audit``'s exit code: OK when every check passed, else AUDIT."""
        return ExitCode.OK if self.ok else ExitCode.AUDIT

    @property
    def failures(self) -> tuple[Check, ...]:
        """The checks that failed."""
        return tuple(c for c in self.checks if not c.ok)

    def scoped(self, scope: str) -> tuple[Check, ...]:
        """The checks belonging to a node key, ``pipeline`` or ``model``."""
        return tuple(c for c in self.checks if c.scope == scope)

    def summary(self) -> str:
        """``audit: N checks, all passed`` or ``audit: K of N checks FAILED``."""
        total, failed = len(self.checks), len(self.failures)
        if not failed:
            return f"audit: {total} checks, all passed"
        return f"audit: {failed} of {total} checks FAILED"

    def to_text(self) -> str:
        """A readable tree for a terminal; failures listed in full at the end."""
        return render.text(self)

    def to_json(self) -> str:
        """The ``nbops.audit/1`` document (see the module docstring)."""
        return json.dumps({"schema": SCHEMA, **self.model_dump(mode="json")}, indent=2, ensure_ascii=False) + "\n"

    def to_html(self) -> str:
        """One self-contained page: inline CSS, no scripts, no remote loads, every value escaped."""
        return render.html(self)
