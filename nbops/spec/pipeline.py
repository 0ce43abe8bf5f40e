"""The pipeline: the whole spec, a stage with its defaults applied, and a loaded spec with its origin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from nbops import sweep
from nbops.errors import InputError, did_you_mean
from nbops.graph import MONITOR_STAGE
from nbops.spec.models import (
    DEFAULT_IMAGE,
    DEFAULT_TIMEOUT,
    NAME_RE,
    AirflowSpec,
    AlertsSpec,
    FilesGlobs,
    ForeachFrom,
    KubernetesSpec,
    MonitorSpec,
    Resources,
    RetrainSpec,
    StageSettings,
    StageSpec,
    Toleration,
    _Model,
    check_schedule,
)


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
            grid=spec.grid,
            foreach=spec.foreach,
            foreach_from=spec.foreach_from,
            max_parallel=spec.max_parallel,
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
    grid: dict[str, tuple[Any, ...]] | None = Field(None, description="Swept: every combination of these values.")
    foreach: tuple[dict[str, Any], ...] | None = Field(None, description="Swept: these parameter sets.")
    foreach_from: ForeachFrom | None = Field(None, description="Swept: the sets an upstream stage writes.")
    max_parallel: int | None = Field(None, description="Points run at once (None: as many as jobs allow).")

    @property
    def swept(self) -> bool:
        """Whether the stage runs once per point."""
        return self.grid is not None or self.foreach is not None or self.foreach_from is not None

    @property
    def sweep_keys(self) -> tuple[str, ...]:
        """The parameters the spec sweeps (a ``-p`` on one is refused); none for ``foreach_from``."""
        if self.grid is not None:
            return tuple(self.grid)
        return tuple(sweep.swept_keys(sweep.list_points(self.foreach))) if self.foreach is not None else ()

    def static_points(self) -> list[sweep.Point] | None:
        """The points the spec itself lists (grid or foreach); None when the stage is not swept or its
        points are known only at run time (``foreach_from``: :func:`nbops.storage.points.points_of`)."""
        if self.grid is not None:
            return sweep.grid_points(self.grid)
        if self.foreach is not None:
            return sweep.list_points(self.foreach)
        return None


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
                rel = match.relative_to(root)
                if match.is_file() and ".nbops" not in rel.parts and not _reopened(root, rel):
                    found.add(rel.as_posix())
        found.discard(Path(resolved.notebook).as_posix())
        return sorted(found)

    def runnable(self) -> list[str]:
        """What a stage command can run: every stage, then the monitor when there is one."""
        return [*self.spec.stages, *([MONITOR_STAGE] if self.spec.monitor is not None else [])]

    def needs(self) -> dict[str, tuple[str, ...]]:
        """The dependency graph: stage -> upstream stages."""
        return {name: s.needs for name, s in self.spec.stages.items()}


REOPENED_PIN = "nbops-debug.json"
"""The pin file of a directory ``nbops debug`` made (``nbops.context.PIN_FILE``): what is under it is
a reopened attempt's copy, never a file of the working tree that travels with a stage."""


def _reopened(root: Path, rel: Path) -> bool:
    """Whether ``rel`` lies in a directory ``nbops debug`` made (one holding :data:`REOPENED_PIN`)."""
    return any((root / parent / REOPENED_PIN).is_file() for parent in rel.parents if parent != Path("."))


def stage_globs(notebook: str, pipeline: tuple[str, ...], stage: tuple[str, ...]) -> tuple[str, ...]:
    """A stage's file globs: the Python files beside its notebook, then the pipeline's, then its own."""
    beside = (Path(notebook).parent / "*.py").as_posix()
    return tuple(dict.fromkeys((beside, *pipeline, *stage)))
