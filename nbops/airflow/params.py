"""Airflow Params built from the notebooks' parameter schemas.

Each stage parameter becomes one DAG Param named ``<stage>.<name>`` (the same spelling as
``nbops run -p STAGE.NAME=VALUE``), typed by JSON schema so the trigger form shows typed
fields grouped by stage and a ``conf`` of the wrong type is rejected when the run is
created, before any task starts.
"""

from __future__ import annotations

from typing import Any

from nbops.lock import Lock
from nbops.notebook.parameters import Param as NotebookParam

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


def param_schema(param: NotebookParam, default: Any, stage: str) -> dict[str, Any]:
    """Keyword arguments of ``airflow.sdk.Param`` for one notebook parameter."""
    schema: dict[str, Any] = {"title": param.name, "section": f"Stage {stage}"}
    json_type = JSON_TYPES.get(param.kind)
    if json_type is not None:
        schema["type"] = [json_type, "null"] if param.nullable else json_type
    help_text = param.help or f"{param.type_label} parameter of stage {stage}"
    return {"default": default, "description": help_text, **schema}


def dag_params(lock: Lock) -> dict[str, Any]:
    """Every stage parameter as an Airflow Param; spec values are the defaults."""
    from airflow.sdk import Param

    params: dict[str, Any] = {}
    for stage, locked in lock.stages.items():
        overrides = lock.spec.stages[stage].parameters
        for param in locked.parameters:
            default = overrides.get(param.name, param.default)
            params[param_key(stage, param.name)] = Param(**param_schema(param, default, stage))
    return params


def params_argument(lock: Lock, stage: str) -> str:
    """The ``--params-json`` argument: a template rendering this stage's values as JSON."""
    names = [p.name for p in lock.stages[stage].parameters]
    bad = [n for n in names if not n.isidentifier()]
    if bad:
        raise ValueError(f"stage '{stage}': parameter names {bad} in the lock are not identifiers")
    if not names:
        return "{}"
    # Names are identifiers (checked by the parameters parser), so they are safe inside the template.
    items = ", ".join(f'"{n}": params["{param_key(stage, n)}"]' for n in names)
    return "{{ {" + items + "} | tojson }}"
