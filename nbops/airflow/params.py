"""Airflow Params built from the notebooks' parameter schemas.

Each stage parameter becomes one DAG Param named ``<stage>.<name>`` (the same spelling as
``nbops run -p STAGE.NAME=VALUE``), typed by JSON schema so the trigger form shows typed
fields grouped by stage and a ``conf`` of the wrong type is rejected when the run is
created, before any task starts.

The lock is read as plain JSON here (no pydantic) to keep DAG parsing cheap.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nbops.graph import MONITOR_STAGE

JSON_TYPES = {
    "int": "integer",
    "float": "number",
    "str": "string",
    "bool": "boolean",
    "list": "array",
    "dict": "object",
}


def param_key(stage: str, name: str) -> str:
    """The DAG Param key of one stage parameter."""
    return f"{stage}.{name}"


def type_label(param: dict[str, Any]) -> str:
    """Human-readable type, e.g. ``float | None``."""
    kind = str(param["kind"])
    return f"{kind} | None" if param.get("nullable") and kind != "any" else kind


def param_schema(param: dict[str, Any], default: Any, stage: str) -> dict[str, Any]:
    """Keyword arguments of ``airflow.sdk.Param`` for one notebook parameter (as locked)."""
    schema: dict[str, Any] = {"title": param["name"], "section": f"Stage {stage}"}
    json_type = JSON_TYPES.get(param["kind"])
    if json_type is not None:
        schema["type"] = [json_type, "null"] if param.get("nullable") else json_type
    help_text = param.get("help") or f"{type_label(param)} parameter of stage {stage}"
    return {"default": default, "description": help_text, **schema}


def locked_stage(lock: dict[str, Any], stage: str) -> dict[str, Any]:
    """A stage's entry in the lock (notebook, sha256, parameters, settings); ``monitor`` is the
    monitor notebook's (no stage may take that name)."""
    if stage == MONITOR_STAGE and stage not in lock["stages"]:
        monitor: dict[str, Any] | None = lock.get("monitor")
        if monitor is None:
            raise KeyError("the lock has no monitor")
        return monitor
    entry: dict[str, Any] = lock["stages"][stage]
    return entry


def stage_defaults(lock: dict[str, Any], stage: str) -> dict[str, Any]:
    """Each parameter's default: the spec's value, else the notebook's."""
    locked = locked_stage(lock, stage)
    overrides = locked["settings"]["parameters"]
    return {p["name"]: overrides.get(p["name"], p["default"]) for p in locked["parameters"]}


def dag_params(lock: dict[str, Any], stages: Iterable[str] | None = None) -> dict[str, Any]:
    """Every parameter of ``stages`` (default: the pipeline's stages) as an Airflow Param, but those
    a sweep sets (each point its own); spec values are the defaults."""
    from airflow.sdk import Param

    params: dict[str, Any] = {}
    for stage in lock["stages"] if stages is None else stages:
        defaults, swept = stage_defaults(lock, stage), swept_keys(lock, stage)
        for param in locked_stage(lock, stage)["parameters"]:
            if param["name"] not in swept:
                params[param_key(stage, param["name"])] = Param(**param_schema(param, defaults[param["name"]], stage))
    return params


def swept_keys(lock: dict[str, Any], stage: str) -> list[str]:
    """The parameters a stage's ``grid`` or ``foreach`` sets, point by point (none for ``foreach_from``,
    whose keys are known at run time)."""
    settings = locked_stage(lock, stage)["settings"]
    if settings.get("grid"):
        return list(settings["grid"])
    return list(dict.fromkeys(k for point in settings.get("foreach") or [] for k in point))


def swept_conf(lock: dict[str, Any]) -> dict[str, str]:
    """Each swept parameter's conf key, with the spec field that sweeps it (``check_conf`` refuses them)."""
    found = {}
    for stage, locked in lock["stages"].items():
        field = "grid" if locked["settings"].get("grid") else "foreach"
        found.update({param_key(stage, k): f"stages.{stage}.{field}" for k in swept_keys(lock, stage)})
    return found


def params_argument(lock: dict[str, Any], stage: str) -> str:
    """The ``--params-json`` argument: a template rendering this stage's values as JSON."""
    swept = swept_keys(lock, stage) if stage in lock["stages"] else []
    names = [str(p["name"]) for p in locked_stage(lock, stage)["parameters"] if p["name"] not in swept]
    bad = [n for n in names if not n.isidentifier()]
    if bad:
        raise ValueError(f"stage '{stage}': parameter names {bad} in the lock are not identifiers")
    if not names:
        return "{}"
    # Identifiers cannot close the quotes or the braces of the template.
    items = ", ".join(f'"{n}": params["{param_key(stage, n)}"]' for n in names)
    return "{{ {" + items + "} | tojson }}"
