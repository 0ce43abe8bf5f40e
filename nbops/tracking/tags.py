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
"""Commit the code came from: checked out where a local run ran; for a promoted run, the
newest commit that changed the spec or a notebook, recorded in the lock; ``unknown`` outside git."""
GIT_DIRTY = "nbops.git_dirty"
"""``true`` when the code differed from that commit, else ``false``."""
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
"""Container image the stage ran in (stage pods only)."""
ENVIRONMENT = "nbops.environment"
"""The Python environment the stage ran in: ``python 3.11.9 at /prefix``."""
PACKAGES_SHA256 = "nbops.packages_sha256"
"""sha256 of the sorted ``name==version`` lines of every package installed in that environment."""
ATTEMPT_PATH = "nbops.attempt_path"
"""The attempt's place under the artifact root: ``runs/<pipeline>/<run key>/<stage>/attempt-<n>``."""
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

CACHE_KEY = "nbops.cache_key"
"""The attempt's key for reuse (DESIGN §13): same key, same notebook, files, parameters, inputs, environment."""
REUSED_RUN = "nbops.reused_run"
"""A ``cached`` stage run: the nbops run whose attempt it reused."""
REUSED_ATTEMPT = "nbops.reused_attempt"
"""A ``cached`` stage run: the reused attempt's place under the artifact root."""
REUSED_MLFLOW_RUN = "nbops.reused_mlflow_run"
"""A ``cached`` stage run: the MLflow stage run of the reused attempt."""

# -- pipeline runs ----------------------------------------------------------------------------
REUSED = "nbops.reused"
"""Resumed runs: the attempts taken over from earlier invocations, ``stage#attempt`` separated by spaces."""

RUN_DATE = "nbops.run_date"
"""The run date (``YYYY-MM-DD``) that ``${run_date}`` in the spec's parameters resolved to."""

# -- the retraining gate, on the challenger version and on the pipeline run (DESIGN §12) ----
GATE_DECISION = "nbops.gate.decision"
"""``promoted``, ``kept``, ``awaiting_approval``, ``rejected`` or ``failed`` (:class:`nbops.tracking.gate.Decision`)."""
GATE_REASON = "nbops.gate.reason"
"""Why: ``first_version``, ``won``, ``below_margin``, ``tie``, ``lost``, ``already_champion``, ``no_version``,
``no_metric``, ``champion_no_metric``."""
GATE_MODEL = "nbops.gate.model"
"""Registered model name."""
GATE_VERSION = "nbops.gate.version"
"""The challenger version (the one the gate stage registered)."""
GATE_METRIC = "nbops.gate.metric"
"""The metric compared."""
GATE_CHALLENGER_VALUE = "nbops.gate.challenger_value"
"""The challenger's value of the metric (its stage run's)."""
GATE_CHAMPION_VERSION = "nbops.gate.champion_version"
"""The champion version when the gate decided (empty: there was none)."""
GATE_CHAMPION_VALUE = "nbops.gate.champion_value"
"""The champion's value of the metric, as recorded on the champion's stage run."""
GATE_MARGIN = "nbops.gate.margin"
"""How much better the challenger is (positive: better, in the metric's direction)."""
GATE_RULE = "nbops.gate.rule"
"""The rule applied, in words."""
GATE_MESSAGE = "nbops.gate.message"
"""The decision in one sentence."""
GATE_APPROVED_BY = "nbops.gate.approved_by"
"""Who approved or rejected a decision that awaited approval."""

# -- monitor runs (DESIGN §12), on the monitor's pipeline run ---------------------------------
MONITOR_TRIGGER = "nbops.monitor.trigger"
"""The trigger rule, e.g. ``drift_score > 0.2``."""
MONITOR_VALUE = "nbops.monitor.value"
"""The monitor notebook's value of the trigger metric."""
MONITOR_HOLDS = "nbops.monitor.holds"
"""``true`` when the trigger held (retraining is called for)."""
MONITOR_RETRAIN_RUN = "nbops.monitor.retrain_run"
"""The nbops run id of the retraining run the monitor started."""

# -- Airflow, on both kinds of run --------------------------------------------------------
AIRFLOW_DAG_ID = "airflow.dag_id"
AIRFLOW_RUN_ID = "airflow.run_id"
AIRFLOW_TRY_NUMBER = "airflow.try_number"
AIRFLOW_LOGICAL_DATE = "airflow.logical_date"
"""The DAG run's logical date (ISO 8601), or its run-after date when it has none (pipeline runs)."""
AIRFLOW_CONF = "airflow.conf"
"""The DAG run's conf as JSON, secrets masked (pipeline runs)."""

# -- who and where, on both kinds of run ------------------------------------------------------
USER = "nbops.user"
"""The OS user the run's process ran as."""
HOST = "nbops.host"
"""The host name it ran on."""
TRIGGERED_BY = "nbops.triggered_by"
"""Who started the run when that is not the OS user: the Airflow user who triggered the DAG run."""
IMAGE_DIGEST = "nbops.image_digest"
"""The stage pod's image as the kubelet reports it (``repo@sha256:...``), when it could be read."""
MLFLOW_USER = "mlflow.user"
"""MLflow's own: the UI's "Created by"."""

# -- model versions registered in a pipeline run --------------------------------------------
STAGE_RUN = "nbops.stage_run"
"""MLflow run id of the stage attempt that registered the version."""
MODEL_SHA256 = "nbops.model_sha256"
"""sha256 of the version's sealed file list (``path sha256`` lines, sorted), as its manifest records it."""
MODEL_SIGNED = "nbops.model_signed"
"""``true`` when the version was signed (its signature is beside the model files), else ``false``."""

# -- MLflow's own ---------------------------------------------------------------------------
PARENT_RUN = "mlflow.parentRunId"
"""Makes a stage run nested under its pipeline run in the UI."""
EXPERIMENT_KIND = "mlflow.experimentKind"
"""Experiment tag choosing the UI's view; nbops sets it to model training (``custom_model_development``)."""
DATASET_CONTEXT = "mlflow.data.context"
"""Input tag naming how a dataset was used; nbops logs upstream outputs as ``upstream``."""

ERROR_MESSAGE_LIMIT = 500


def flag(value: bool) -> str:
    """A boolean tag value: ``true`` or ``false``."""
    return "true" if value else "false"
