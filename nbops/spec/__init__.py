"""The pipeline spec (``pipeline.yaml``): frozen pydantic models and their loader.

Every problem is reported at once, each in one format naming the file, the line, the field
path and, where one exists, the nearest valid name::

    /work/pipeline.yaml:25: stages.prepare.needs: unknown stage 'transfrom'; did you mean 'transform'?

The package is split by job: :mod:`~nbops.spec.models` (the sections of the spec),
:mod:`~nbops.spec.pipeline` (the whole spec and a loaded pipeline), :mod:`~nbops.spec.source`
(reading the file and the line of every field), :mod:`~nbops.spec.messages` (validation errors
in words), :mod:`~nbops.spec.stage_graph` (names, ``needs`` and cycles) and
:mod:`~nbops.spec.load` (all of it together).
"""

from __future__ import annotations

from nbops.graph import MONITOR_STAGE, RESERVED_STAGES
from nbops.spec.load import SpecCheck, check_pipeline, check_source, check_spec, load_pipeline
from nbops.spec.models import (
    ALERT_EVENTS,
    CRON_PRESETS,
    DEFAULT_IMAGE,
    DEFAULT_TIMEOUT,
    DNS_SUBDOMAIN_RE,
    K8S_NAME_RE,
    NAME_RE,
    QUANTITY_RE,
    STAGE_RE,
    AirflowSpec,
    AlertEvent,
    AlertsSpec,
    FilesGlobs,
    ForeachFrom,
    KubernetesSpec,
    MonitorSpec,
    Quantity,
    Resources,
    RetrainSpec,
    SecretName,
    StageSettings,
    StageSpec,
    Toleration,
    TriggerSpec,
    check_notebook,
    check_schedule,
)
from nbops.spec.pipeline import FrozenFile, FrozenNotebook, Pipeline, PipelineSpec, ResolvedStage, stage_globs
from nbops.spec.source import Loc, Problem, SpecSource, field_path, read_spec
from nbops.spec.stage_graph import graph_problems

__all__ = [
    "ALERT_EVENTS",
    "CRON_PRESETS",
    "DEFAULT_IMAGE",
    "DEFAULT_TIMEOUT",
    "DNS_SUBDOMAIN_RE",
    "K8S_NAME_RE",
    "MONITOR_STAGE",
    "NAME_RE",
    "QUANTITY_RE",
    "RESERVED_STAGES",
    "STAGE_RE",
    "AirflowSpec",
    "AlertEvent",
    "AlertsSpec",
    "FilesGlobs",
    "ForeachFrom",
    "FrozenFile",
    "FrozenNotebook",
    "KubernetesSpec",
    "Loc",
    "MonitorSpec",
    "Pipeline",
    "PipelineSpec",
    "Problem",
    "Quantity",
    "ResolvedStage",
    "Resources",
    "RetrainSpec",
    "SecretName",
    "SpecCheck",
    "SpecSource",
    "StageSettings",
    "StageSpec",
    "Toleration",
    "TriggerSpec",
    "check_notebook",
    "check_pipeline",
    "check_schedule",
    "check_source",
    "check_spec",
    "field_path",
    "graph_problems",
    "load_pipeline",
    "read_spec",
    "stage_globs",
]
