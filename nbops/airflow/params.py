"""Airflow Params built from the notebooks' parameter schemas.

Each stage parameter becomes one DAG Param named ``<stage>.<name>`` (the same spelling as
``nbops run -p STAGE.NAME=VALUE``), typed by JSON schema so the trigger form shows typed
fields grouped by stage and a ``conf`` of the wrong type is rejected when the run is
created, before any task starts.

The lock is read as plain JSON here (no pydantic) to keep DAG parsing cheap.
"""

from __future__ import annotations

from typing import Any

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


def stage_defaults(lock: dict[str, Any], stage: str) -> dict[str, Any]:
    """Each parameter's default: the spec's value, else the notebook's."""
    overrides = lock["spec"]["stages"][stage]["parameters"]
    return {p["name"]: overrides.get(p["name"], p["default"]) for p in lock["stages"][stage]["parameters"]}


def dag_params(lock: dict[str, Any]) -> dict[str, Any]:
    """Every stage parameter as an Airflow Param; spec values are the defaults."""
    from airflow.sdk import Param

    params: dict[str, Any] = {}
    for stage, locked in lock["stages"].items():
        defaults = stage_defaults(lock, stage)
        for param in locked["parameters"]:
            params[param_key(stage, param["name"])] = Param(**param_schema(param, defaults[param["name"]], stage))
    return params


def params_argument(lock: dict[str, Any], stage: str) -> str:
    """The ``--params-json`` argument: a template rendering this stage's values as JSON."""
    names = [str(p["name"]) for p in lock["stages"][stage]["parameters"]]
    bad = [n for n in names if not n.isidentifier()]
    if bad:
        raise ValueError(f"stage '{stage}': parameter names {bad} in the lock are not identifiers")
    if not names:
        return "{}"
    # Identifiers cannot close the quotes or the braces of the template.
    items = ", ".join(f'"{n}": params["{param_key(stage, n)}"]' for n in names)
    return "{{ {" + items + "} | tojson }}"
