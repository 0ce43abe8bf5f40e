"""The spec's building blocks: every section of ``pipeline.yaml`` but the pipeline itself.

Frozen pydantic models that forbid unknown keys; :mod:`nbops.spec.pipeline` puts them together.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_RE = r"^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$"
STAGE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
QUANTITY_RE = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
DNS_SUBDOMAIN_RE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CRON_PRESETS = frozenset(
    {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually"}
)
DEFAULT_IMAGE = "nbops-runner:0.1"
DEFAULT_TIMEOUT = 3600


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Quantity = Annotated[str, Field(pattern=QUANTITY_RE)]


class Resources(_Model):
    """Requests (and limits) of one stage attempt."""

    cpu: Quantity | None = Field(None, description="CPU request/limit, a Kubernetes quantity ('1', '500m').")
    memory: Quantity | None = Field(None, description="Memory request/limit, a Kubernetes quantity ('2Gi').")
    gpu: int | None = Field(None, ge=0, le=64, description="Number of nvidia.com/gpu devices.")

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _numbers_are_quantities(cls, value: object) -> object:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    def merged_over(self, base: Resources | None) -> Resources:
        """Return these resources with unset keys taken from ``base``."""
        if base is None:
            return self
        return Resources(
            cpu=self.cpu if self.cpu is not None else base.cpu,
            memory=self.memory if self.memory is not None else base.memory,
            gpu=self.gpu if self.gpu is not None else base.gpu,
        )


class Toleration(_Model):
    """A Kubernetes toleration, spelled as in a pod spec."""

    key: str | None = Field(None, description="Taint key the toleration matches; empty matches all keys.")
    operator: Literal["Exists", "Equal"] = Field("Equal", description="How key and value are compared.")
    value: str | None = Field(None, description="Taint value (with operator Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect matched; empty matches all effects."
    )
    toleration_seconds: int | None = Field(None, ge=0, description="How long a NoExecute taint is tolerated.")

    @model_validator(mode="after")
    def _exists_has_no_value(self) -> Toleration:
        if self.operator == "Exists" and self.value is not None:
            raise ValueError("a toleration with operator Exists must not have a value")
        return self


SecretName = Annotated[str, Field(pattern=DNS_SUBDOMAIN_RE, max_length=253)]


class StageSettings(_Model):
    """Settings a stage may set itself or inherit from ``defaults``."""

    image: str | None = Field(None, description="Container image of the stage pod.")
    retries: int | None = Field(None, ge=0, le=20, description="Retries after a failed attempt.")
    timeout: int | None = Field(None, gt=0, description="Seconds one stage attempt may take.")
    cell_timeout: int | None = Field(None, gt=0, description="Seconds one cell may take (default: timeout).")
    resources: Resources | None = Field(None, description="CPU, memory and GPU of the stage.")
    node_selector: dict[str, str] | None = Field(None, description="Kubernetes node selector labels.")
    tolerations: tuple[Toleration, ...] | None = Field(None, description="Kubernetes tolerations.")
    secrets: tuple[SecretName, ...] | None = Field(None, description="Kubernetes Secret names exposed as env.")
    cache: bool | None = Field(
        None,
        description="Reuse a completed attempt with the same notebook, files, parameters, inputs and environment "
        "(default true); false for a stage that reads the outside world.",
    )


def _relative_globs(value: tuple[str, ...]) -> tuple[str, ...]:
    for glob in value:
        parts = Path(glob).parts
        if not glob.strip() or Path(glob).is_absolute() or ".." in parts:
            raise ValueError(f"'{glob}' must be a glob relative to the pipeline file's directory, inside it")
    return value


FilesGlobs = Annotated[
    tuple[str, ...],
    AfterValidator(_relative_globs),
    Field(description="Globs of files the stage needs besides its notebook, relative to the pipeline file."),
]


class ForeachFrom(_Model):
    """Where a ``foreach_from`` sweep reads its parameter sets: a JSON list in an upstream stage's outputs."""

    stage: str = Field(min_length=1, description="The upstream stage (listed in needs) that writes the file.")
    file: str = Field(min_length=1, description="Path of the JSON list under that stage's outputs.")

    @field_validator("file")
    @classmethod
    def _inside_outputs(cls, value: str) -> str:
        if Path(value).is_absolute() or ".." in Path(value).parts:
            raise ValueError(f"'{value}' must be a path relative to the stage's outputs, inside them")
        return value


class StageSpec(StageSettings):
    """One stage: a notebook, what it needs and how it runs."""

    notebook: str = Field(description="Path of the notebook, relative to the pipeline file.")
    needs: tuple[str, ...] = Field((), description="Stages whose outputs this stage reads.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Parameter overrides for this stage.")
    test_parameters: dict[str, Any] = Field(
        default_factory=dict, description="Merged over `parameters` by `nbops test` (small, fast values)."
    )
    files: FilesGlobs = ()
    grid: dict[str, tuple[Any, ...]] | None = Field(
        None, description="Sweep: every combination of these parameters' values, one attempt per point."
    )
    foreach: tuple[dict[str, Any], ...] | None = Field(
        None, description="Sweep: an explicit list of parameter sets, one attempt per point."
    )
    foreach_from: ForeachFrom | None = Field(
        None, description="Sweep: a JSON list of parameter sets an upstream stage writes, read at run time."
    )
    max_parallel: int | None = Field(None, ge=1, le=1024, description="Points of a sweep run at once (default: all).")

    @field_validator("notebook")
    @classmethod
    def _is_notebook(cls, value: str) -> str:
        return check_notebook(value)

    @field_validator("grid")
    @classmethod
    def _grid_has_values(cls, value: dict[str, tuple[Any, ...]] | None) -> dict[str, tuple[Any, ...]] | None:
        if value is not None:
            if not value:
                raise ValueError("a grid names at least one parameter")
            empty = [k for k, values in value.items() if not values]
            if empty:
                raise ValueError(f"grid parameter(s) {', '.join(empty)} have no values")
            twice = [
                k for k, values in value.items() if len({json.dumps(v, sort_keys=True) for v in values}) < len(values)
            ]
            if twice:
                raise ValueError(f"grid parameter(s) {', '.join(twice)} list a value twice")
        return value

    @field_validator("foreach")
    @classmethod
    def _foreach_has_points(cls, value: tuple[dict[str, Any], ...] | None) -> tuple[dict[str, Any], ...] | None:
        if value is not None:
            if not value:
                raise ValueError("foreach lists at least one parameter set")
            seen = [json.dumps(p, sort_keys=True) for p in value]
            if len(set(seen)) < len(seen):
                raise ValueError("foreach lists the same parameter set twice")
        return value

    @model_validator(mode="after")
    def _one_sweep(self) -> StageSpec:
        given = [k for k in ("grid", "foreach", "foreach_from") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of grid, foreach and foreach_from (got {' and '.join(given)})")
        if self.max_parallel is not None and not given:
            raise ValueError("max_parallel applies to a swept stage only (grid, foreach or foreach_from)")
        if self.foreach_from is not None and self.foreach_from.stage not in self.needs:
            raise ValueError(f"foreach_from.stage '{self.foreach_from.stage}' must be in needs")
        return self

    @property
    def swept(self) -> bool:
        """Whether the stage runs once per point."""
        return self.grid is not None or self.foreach is not None or self.foreach_from is not None


class RetrainSpec(_Model):
    """The champion/challenger gate of the registered model, executed by nbops after ``stage``."""

    model: str = Field(min_length=1, description="Registered model name in the MLflow registry.")
    stage: str = Field(min_length=1, description="The stage whose run registers the challenger version.")
    metric: str = Field(min_length=1, description="Metric of that stage run compared with the champion's.")
    direction: Literal["maximize", "minimize"] = Field("maximize", description="Which way is better.")
    min_improvement: float = Field(0.0, ge=0, description="Margin the challenger must win by (strictly more).")
    approval: Literal["auto", "manual"] = Field(
        "auto", description="manual: a person approves (nbops approve, Airflow's approval task) before the alias moves."
    )


class TriggerSpec(_Model):
    """When a monitor run starts a retraining run: its metric above or below a threshold."""

    metric: str = Field(min_length=1, description="A metric the monitor notebook logs (a `metrics` cell).")
    above: float | None = Field(None, description="Retrain when the metric is strictly above this value.")
    below: float | None = Field(None, description="Retrain when the metric is strictly below this value.")

    @model_validator(mode="after")
    def _one_threshold(self) -> TriggerSpec:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of 'above' and 'below'")
        return self

    def holds(self, value: float) -> bool:
        """Whether ``value`` of the metric calls for retraining."""
        if self.above is not None:
            return value > self.above
        return value < (self.below if self.below is not None else float("-inf"))

    def describe(self) -> str:
        """The rule as text: ``drift_score > 0.2``."""
        return f"{self.metric} > {self.above:g}" if self.above is not None else f"{self.metric} < {self.below:g}"


class MonitorSpec(StageSettings):
    """The drift monitor: a tagged notebook run on its own schedule, whose metric may start a retraining run."""

    notebook: str = Field(description="Path of the monitor notebook, relative to the pipeline file.")
    schedule: str | None = Field("@daily", description="Cron expression or Airflow preset of the monitor DAG.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Parameter overrides of the notebook.")
    test_parameters: dict[str, Any] = Field(default_factory=dict, description="Merged over `parameters` by tests.")
    files: FilesGlobs = ()
    trigger: TriggerSpec = Field(description="The metric and threshold that start a retraining run.")

    @field_validator("notebook")
    @classmethod
    def _is_notebook(cls, value: str) -> str:
        return check_notebook(value)

    @field_validator("schedule")
    @classmethod
    def _is_schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)


AlertEvent = Literal["failure", "champion_change", "drift"]
ALERT_EVENTS: tuple[AlertEvent, ...] = ("failure", "champion_change", "drift")


class AlertsSpec(_Model):
    """Where alerts go (Apprise URLs) and on which events."""

    urls: tuple[str, ...] = Field(
        (), description="Apprise URLs; ${VAR} is read from the environment when sending, never printed."
    )
    on: tuple[AlertEvent, ...] = Field(ALERT_EVENTS, description="Events that send an alert.")
    connection: str | None = Field(
        None, description="Airflow connection id (apprise provider) whose URLs the DAGs' alerts also go to."
    )

    @model_validator(mode="before")
    @classmethod
    def _on_is_a_key(cls, data: Any) -> Any:
        # YAML 1.1 reads a bare `on:` key as the boolean true.
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _somewhere(self) -> AlertsSpec:
        if not self.urls and not self.connection:
            raise ValueError("give 'urls' (Apprise URLs) or an Airflow 'connection', or drop 'alerts'")
        return self


K8S_NAME_RE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class KubernetesSpec(_Model):
    """Where and how stage pods run on Kubernetes (the promoted DAG's pod settings)."""

    namespace: str = Field("nbops", pattern=K8S_NAME_RE, max_length=63, description="Namespace of stage pods.")
    service_account: str = Field(
        "nbops-stage", pattern=DNS_SUBDOMAIN_RE, max_length=253, description="Service account of stage pods."
    )
    artifacts_claim: str | None = Field(
        "nbops-artifacts",
        pattern=DNS_SUBDOMAIN_RE,
        max_length=253,
        description="PersistentVolumeClaim mounted at /nbops/artifacts as the artifact root; null mounts none.",
    )
    startup_timeout: int = Field(600, gt=0, le=86400, description="Seconds a pod may take to start running.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Image pull policy of stage pods."
    )


class AirflowSpec(_Model):
    """Settings of the generated Airflow DAG that are not stage settings."""

    max_active_runs: int = Field(1, ge=1, le=64, description="DAG runs allowed at once.")
    retry_delay: int = Field(60, gt=0, description="Seconds before the first retry of a stage; doubles each retry.")
    max_retry_delay: int = Field(3600, gt=0, description="Upper bound of the retry delay in seconds.")
    tags: tuple[str, ...] = Field((), description="Extra DAG tags shown in the Airflow UI.")


def check_notebook(value: str) -> str:
    """A notebook path must name a .ipynb file; ValueError otherwise."""
    if not value.endswith(".ipynb"):
        raise ValueError(f"'{value}' is not a .ipynb file")
    return value


def check_schedule(value: str | None) -> str | None:
    """A cron expression or an Airflow preset (or None); ValueError otherwise."""
    if value is None or value in CRON_PRESETS:
        return value
    fields = value.split()
    if len(fields) not in (5, 6) or not all(re.fullmatch(r"[0-9*/,\-A-Za-z?LW#]+", f) for f in fields):
        raise ValueError(f"'{value}' is neither a 5-field cron expression nor a preset like @daily")
    return value
