"""Every MLflow tag nbops writes, named once (DESIGN §8).

Readers (``nbops audit``, the UI, tests) import these names instead of spelling strings.
"""

from __future__ import annotations

# -- both kinds of run --------------------------------------------------------------------
PIPELINE = "nbops.pipeline"
"""Pipeline name (also the experiment name)."""
RUN_ID = "nbops.run_id"
"""nbops pipeline run id, shared by the parent run and every stage run."""
KIND = "nbops.kind"
"""``pipeline`` (parent run), ``stage`` (one stage attempt) or ``interactive``."""
STATUS = "nbops.status"
"""A :class:`nbops.status.StageStatus` value on stage runs; on parent runs the run's outcome."""
GIT_COMMIT = "nbops.git_commit"
"""Commit checked out where the run started (``-dirty`` when modified), or ``unknown``."""
TRIGGER = "nbops.trigger"
"""What started the run: ``nbops run``, ``airflow``, ``exec-stage``."""
SPEC_SHA256 = "nbops.spec_sha256"
"""sha256 of the pipeline spec's bytes."""
LOCK_SHA256 = "nbops.lock_sha256"
"""sha256 of the promoted lock (promoted runs only)."""
VERSION = "nbops.version"
"""nbops version that wrote the record."""

# -- stage runs -----------------------------------------------------------------------------
STAGE = "nbops.stage"
"""Stage name."""
ATTEMPT = "nbops.attempt"
"""Attempt number of the stage in its pipeline run (1, 2, ...)."""
NOTEBOOK_PATH = "nbops.notebook.path"
"""Notebook path as the spec names it."""
NOTEBOOK_SHA256 = "nbops.notebook.sha256"
"""sha256 of the source notebook's bytes."""
IMAGE = "nbops.image"
"""Container image the stage ran in (Kubernetes), or the local environment."""
FAILED_CELL = "nbops.failed_cell"
"""0-based index of the failing cell in the source notebook."""
FAILED_EXECUTION_COUNT = "nbops.failed_execution_count"
"""Execution count of the failing cell, as Jupyter shows it (``[4]``)."""
ERROR = "nbops.error"
"""Exception name of the failure (``ValueError``, ``StageTimeout``, ``ArtifactStoreError``)."""
ERROR_MESSAGE = "nbops.error_message"
"""What went wrong, secrets masked, cut to 500 characters."""
TIMEOUT_LIMIT = "nbops.timeout_s"
"""The cell or stage timeout, in seconds, that ran out."""
SIGNAL = "nbops.signal"
"""The signal that stopped the stage (``SIGTERM``, ``SIGINT``)."""

# -- Airflow, on both kinds of run --------------------------------------------------------
AIRFLOW_DAG_ID = "airflow.dag_id"
AIRFLOW_RUN_ID = "airflow.run_id"
AIRFLOW_TRY_NUMBER = "airflow.try_number"

# -- MLflow's own ---------------------------------------------------------------------------
PARENT_RUN = "mlflow.parentRunId"
"""Makes a stage run nested under its pipeline run in the UI."""

ERROR_MESSAGE_LIMIT = 500
