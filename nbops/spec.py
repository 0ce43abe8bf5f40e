"""The pipeline spec (``pipeline.yaml``): frozen pydantic models and their loader.

Every structural problem is reported at once, each naming the file, the field path and,
where YAML knows it, the line. Graph problems (unknown ``needs``, cycles) follow the same
format.
"""

from __future__ import annotations

import hashlib
import keyword
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nbops.errors import InputError, did_you_mean, format_problems
from nbops.graph import MONITOR_STAGE, RESERVED_STAGES, find_cycle

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


_M = TypeVar("_M", bound=_Model)


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


class StageSpec(StageSettings):
    """One stage: a notebook, what it needs and how it runs."""

    notebook: str = Field(description="Path of the notebook, relative to the pipeline file.")
    needs: tuple[str, ...] = Field((), description="Stages whose outputs this stage reads.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Parameter overrides for this stage.")
    test_parameters: dict[str, Any] = Field(
        default_factory=dict, description="Merged over `parameters` by `nbops test` (small, fast values)."
    )
    files: FilesGlobs = ()

    @field_validator("notebook")
    @classmethod
    def _is_notebook(cls, value: str) -> str:
        return check_notebook(value)


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


class PipelineSpec(_Model):
    """A whole pipeline as written in ``pipeline.yaml``."""

    name: str = Field(pattern=NAME_RE, description="DAG id and MLflow experiment name.")
    description: str = Field("", description="Free text shown in the DAG docs.")
    schedule: str | None = Field(None, description="Cron expression or Airflow preset; null = manual only.")
    image: str = Field(DEFAULT_IMAGE, min_length=1, description="Default stage image.")
    defaults: StageSettings = Field(default_factory=StageSettings, description="Defaults for every stage.")
    stages: dict[str, StageSpec] = Field(min_length=1, description="Stages by name.")
    retrain: RetrainSpec | None = Field(None, description="Optional champion/challenger gate.")
    monitor: MonitorSpec | None = Field(None, description="Optional drift monitor that starts retraining runs.")
    alerts: AlertsSpec | None = Field(None, description="Optional alerts on failure, champion change and drift.")
    kubernetes: KubernetesSpec = Field(default_factory=KubernetesSpec, description="Stage pod settings.")
    airflow: AirflowSpec = Field(default_factory=AirflowSpec, description="Generated DAG settings.")
    files: FilesGlobs = ()

    @field_validator("schedule")
    @classmethod
    def _is_schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)

    def entry(self, stage: str) -> StageSpec:
        """A stage's own entry; the monitor (``stage`` = ``monitor``) as a stage with no needs."""
        if stage == MONITOR_STAGE and self.monitor is not None and stage not in self.stages:
            m = self.monitor
            own = {k: getattr(m, k) for k in StageSettings.model_fields}
            return StageSpec(
                notebook=m.notebook, parameters=m.parameters, test_parameters=m.test_parameters, files=m.files, **own
            )
        return self.stages[stage]

    def resolved(self, stage: str) -> ResolvedStage:
        """Return stage ``stage`` with every inherited setting filled in."""
        spec = self.entry(stage)
        base = self.defaults

        def pick(field: str, fallback: Any) -> Any:
            own = getattr(spec, field)
            if own is not None:
                return own
            inherited = getattr(base, field)
            return inherited if inherited is not None else fallback

        timeout = pick("timeout", DEFAULT_TIMEOUT)
        resources = (spec.resources or Resources()).merged_over(base.resources)
        return ResolvedStage(
            name=stage,
            notebook=spec.notebook,
            needs=spec.needs,
            parameters=spec.parameters,
            image=pick("image", self.image),
            retries=pick("retries", 0),
            timeout=timeout,
            cell_timeout=pick("cell_timeout", timeout),
            resources=resources,
            node_selector=pick("node_selector", {}),
            tolerations=pick("tolerations", ()),
            secrets=pick("secrets", ()),
            files=stage_globs(spec.notebook, self.files, spec.files),
            # The monitor reads the newest data and the current champion: never reused.
            cache=pick("cache", True) and stage != MONITOR_STAGE,
            test_parameters=spec.test_parameters,
        )


class ResolvedStage(_Model):
    """A stage with defaults applied: what the stage command and DAG factory consume."""

    name: str = Field(description="Stage name.")
    notebook: str = Field(description="Notebook path relative to the pipeline file.")
    needs: tuple[str, ...] = Field(description="Upstream stages.")
    parameters: dict[str, Any] = Field(description="Parameter overrides from the spec.")
    image: str = Field(description="Container image.")
    retries: int = Field(description="Retries after a failed attempt.")
    timeout: int = Field(description="Seconds per attempt.")
    cell_timeout: int = Field(description="Seconds per cell.")
    resources: Resources = Field(description="CPU, memory, GPU.")
    node_selector: dict[str, str] = Field(description="Node selector labels.")
    tolerations: tuple[Toleration, ...] = Field(description="Tolerations.")
    secrets: tuple[str, ...] = Field(description="Secret names.")
    files: tuple[str, ...] = Field((), description="Globs of the files that travel with the notebook.")
    cache: bool = Field(True, description="Whether a completed attempt with the same key may be reused.")
    test_parameters: dict[str, Any] = Field(default_factory=dict, description="What `nbops test` merges over them.")


class FrozenFile(_Model):
    """A file promoted with a stage's notebook: its place in the project and its published copy."""

    path: str = Field(description="Path relative to the pipeline file's directory (POSIX).")
    source: Path = Field(description="Where the published bytes are read from.")
    sha256: str = Field(description="sha256 recorded by `nbops promote`.")


class FrozenNotebook(_Model):
    """A promoted notebook: the published copy and the hash its bytes must have."""

    path: Path = Field(description="Where the published bytes are read from.")
    sha256: str = Field(description="sha256 recorded by `nbops promote`.")
    files: tuple[FrozenFile, ...] = Field((), description="The files that travel with it.")


class Pipeline(_Model):
    """A loaded spec together with where it came from."""

    spec: PipelineSpec = Field(description="The validated spec.")
    path: Path = Field(description="Absolute path of the pipeline file (or of the promoted lock).")
    sha256: str = Field(description="sha256 of the spec file's bytes.")
    frozen: dict[str, FrozenNotebook] = Field(
        default_factory=dict, description="Promoted notebooks by stage; empty when run from the working tree."
    )

    @property
    def root(self) -> Path:
        """Directory of the pipeline file; notebook paths are relative to it."""
        return self.path.parent

    @property
    def name(self) -> str:
        """The pipeline name."""
        return self.spec.name

    def notebook_path(self, stage: str) -> Path:
        """Absolute path of a stage's notebook (the published copy when promoted)."""
        if stage in self.frozen:
            return self.frozen[stage].path
        return (self.root / self.spec.entry(stage).notebook).resolve()

    def stage(self, stage: str) -> ResolvedStage:
        """A stage with defaults applied; InputError naming the file for unknown names."""
        if stage not in self.spec.stages and not (stage == MONITOR_STAGE and self.spec.monitor is not None):
            known = ", ".join(self.spec.stages)
            hint = did_you_mean(stage, self.spec.stages) or "."
            raise InputError(f"{self.path}: there is no stage '{stage}' (stages: {known}){hint}")
        return self.spec.resolved(stage)

    def stage_files(self, stage: str) -> list[str]:
        """The files of the working tree that travel with a stage's notebook (POSIX paths relative
        to the pipeline file's directory, sorted): every match of its globs, the notebook excluded."""
        resolved, root = self.spec.resolved(stage), self.root.resolve()
        found = set()
        for glob in resolved.files:
            for match in root.glob(glob):
                if match.is_file() and ".nbops" not in match.relative_to(root).parts:
                    found.add(match.relative_to(root).as_posix())
        found.discard(Path(resolved.notebook).as_posix())
        return sorted(found)

    def runnable(self) -> list[str]:
        """What a stage command can run: every stage, then the monitor when there is one."""
        return [*self.spec.stages, *([MONITOR_STAGE] if self.spec.monitor is not None else [])]

    def needs(self) -> dict[str, tuple[str, ...]]:
        """The dependency graph: stage -> upstream stages."""
        return {name: s.needs for name, s in self.spec.stages.items()}


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


def stage_globs(notebook: str, pipeline: tuple[str, ...], stage: tuple[str, ...]) -> tuple[str, ...]:
    """A stage's file globs: the Python files beside its notebook, then the pipeline's, then its own."""
    beside = (Path(notebook).parent / "*.py").as_posix()
    return tuple(dict.fromkeys((beside, *pipeline, *stage)))


def load_pipeline(path: str | Path) -> Pipeline:
    """Read, parse and validate a pipeline file, reporting every problem at once.

    Raises:
        InputError: the file is missing, is not YAML, or breaks the spec.
    """
    file, raw, data, node = _read_spec(path)
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(err, node) for err in exc.errors()]
        raise InputError(
            format_problems(f"{file}: {len(problems)} problem(s) in the pipeline spec:", problems)
        ) from None
    problems = graph_problems(spec)
    if problems:
        raise InputError(format_problems(f"{file}: {len(problems)} problem(s) in the stage graph:", problems))
    return Pipeline(spec=spec, path=file, sha256=hashlib.sha256(raw).hexdigest())


def check_pipeline(path: str | Path) -> tuple[Pipeline | None, list[str]]:
    """Every problem of a pipeline file, and the pipeline as far as it is valid (for ``nbops lint``).

    Each problem is one line naming the file, as ``load_pipeline`` reports them. When the spec
    breaks, the pipeline returned keeps the stages whose own entries are valid once their bad
    keys are left out, so their notebooks can still be checked; it is None when the file cannot
    be read or parsed, or no stage survives. Never raises for a bad file.
    """
    try:
        file, raw, data, node = _read_spec(path)
    except InputError as exc:
        return None, [str(exc)]
    sha256 = hashlib.sha256(raw).hexdigest()
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        problems = [f"{file}: {_describe(err, node)}" for err in exc.errors()]
        partial = _partial_spec(data)
        stages = data.get("stages")
        names = [n for n in stages if isinstance(n, str)] if isinstance(stages, dict) else []
        problems += [f"{file}: {p}" for p in _graph_problems(partial.stages if partial else {}, names)]
        return (None if partial is None else Pipeline(spec=partial, path=file, sha256=sha256)), problems
    problems = [f"{file}: {p}" for p in graph_problems(spec)]
    return Pipeline(spec=spec, path=file, sha256=sha256), problems


def _read_spec(path: str | Path) -> tuple[Path, bytes, dict[str, Any], yaml.Node | None]:
    """The resolved file, its bytes, its YAML mapping and node tree (for line numbers)."""
    file = Path(path).resolve()
    try:
        raw = file.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{file}: pipeline file not found.") from exc
    except OSError as exc:
        raise InputError(f"{file}: cannot read pipeline file ({exc.strerror}).") from exc
    try:
        text = raw.decode("utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{file}: expected a mapping with 'name' and 'stages' at the top level.")
    return file, raw, data, node


def _partial_spec(data: dict[str, Any]) -> PipelineSpec | None:
    """The valid part of a spec that failed validation: its valid stages over its valid defaults."""
    raw_stages = data.get("stages")
    stages: dict[str, StageSpec] = {}
    for name, entry in raw_stages.items() if isinstance(raw_stages, dict) else ():
        stage = _salvage(StageSpec, entry)
        if isinstance(name, str) and stage is not None:
            stages[name] = stage
    if not stages:
        return None
    defaults = _salvage(StageSettings, data.get("defaults") or {}) or StageSettings()
    image = data.get("image")
    return PipelineSpec.model_construct(
        name=str(data.get("name", "")),
        image=image if isinstance(image, str) and image else DEFAULT_IMAGE,
        defaults=defaults,
        stages=stages,
    )


def _salvage(model: type[_M], value: object) -> _M | None:
    """``value`` validated as ``model``, leaving out its top-level keys that are invalid; None if still invalid."""
    if not isinstance(value, dict):
        return None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        bad = {err["loc"][0] for err in exc.errors() if err["loc"]}
    try:
        return model.model_validate({k: v for k, v in value.items() if k not in bad})
    except ValidationError:
        return None


def graph_problems(spec: PipelineSpec) -> list[str]:
    """Stage names, unknown ``needs`` and cycles, all found in one pass; the stage the gate follows."""
    problems = _graph_problems(spec.stages, list(spec.stages))
    if spec.retrain is not None and spec.retrain.stage not in spec.stages:
        name = spec.retrain.stage
        problems.append(f"retrain.stage: unknown stage '{name}'{did_you_mean(name, spec.stages)}")
    if spec.monitor is not None and spec.retrain is None:
        problems.append(
            "monitor: a monitor compares new data with what the champion was trained on, so it needs a "
            "`retrain:` block naming the registered model"
        )
    return problems


def _graph_problems(stages: Mapping[str, StageSpec], names: list[str]) -> list[str]:
    """Problems of the stage ``names`` and of the ``needs`` of ``stages`` (a subset of them)."""
    problems: list[str] = []
    for name in names:
        if not STAGE_RE.match(name) or keyword.iskeyword(name):
            problems.append(f"stages.{name}: a stage name must be an identifier of at most 63 characters")
        elif name in RESERVED_STAGES:
            problems.append(f"stages.{name}: '{name}' is reserved (a task of the generated DAG)")
        stage = stages.get(name)
        for up in stage.needs if stage is not None else ():
            if up not in names:
                problems.append(f"stages.{name}.needs: unknown stage '{up}'{did_you_mean(up, names)}")
            elif up == name:
                problems.append(f"stages.{name}.needs: a stage cannot need itself")
    if not problems:
        cycle = find_cycle({n: s.needs for n, s in stages.items()})
        if cycle:
            problems.append("stages: dependency cycle " + " -> ".join(cycle) + " (each stage needs the one before it)")
    return problems


_PATTERNS = {
    NAME_RE: (
        "a valid pipeline name",
        "use 1 to 63 lowercase letters, digits, '-' and '_', starting and ending with a letter or digit "
        "(it becomes the Airflow DAG id and the MLflow experiment name)",
    ),
    QUANTITY_RE: (
        "a Kubernetes quantity",
        "write a number with an optional unit, such as 2, 0.5, 500m, 512Mi or 4Gi",
    ),
    DNS_SUBDOMAIN_RE: (
        "a valid Kubernetes name",
        "use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
    ),
    K8S_NAME_RE: (
        "a valid Kubernetes namespace",
        "use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
    ),
}
"""Each ``pattern=`` of the spec, told in words: what the value should be and what is allowed."""


def _describe(err: Any, node: yaml.Node | None) -> str:
    loc = tuple(err["loc"])
    where = ".".join(str(p) for p in loc) or "(top level)"
    line = _line_of(node, loc)
    at = f" (line {line})" if line else ""
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check its spelling)"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"] == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") in _PATTERNS:
        what, allowed = _PATTERNS[err["ctx"]["pattern"]]
        msg = f"{err['input']!r} is not {what}: {allowed}"
    return f"{where}{at}: {msg}"


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Line (1-based) of the YAML node at ``loc``, or of its nearest existing parent."""
    best = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
            if nxt is None:
                key = next((k for k, _ in node.value if getattr(k, "value", None) == str(part)), None)
                return key.start_mark.line + 1 if key is not None else best
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return best
        best = node.start_mark.line + 1
    return best
