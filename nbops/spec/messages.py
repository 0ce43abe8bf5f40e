"""Pydantic's validation errors told as spec problems: the field path, and a sentence a person can act on.

An unknown key comes with the nearest allowed one (``unknown key; did you mean 'needs'?``) or the
list of allowed keys; a ``pattern=`` mismatch says what the value should be in words.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from nbops.errors import did_you_mean
from nbops.spec.models import DNS_SUBDOMAIN_RE, K8S_NAME_RE, NAME_RE, QUANTITY_RE
from nbops.spec.source import Loc, Problem

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

_PREFIXES = ("Value error, ", "Assertion failed, ")
"""What pydantic puts before the message of a validator's own ValueError."""


def describe(err: ErrorDetails, root: type[BaseModel]) -> Problem:
    """One validation error of a ``root`` document as a problem at its field path."""
    loc: Loc = tuple(err["loc"])
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        allowed = allowed_keys(root, loc[:-1])
        name = str(loc[-1]) if loc else ""
        hint = did_you_mean(name, allowed) or (f" (allowed: {', '.join(allowed)})" if allowed else "")
        return Problem(loc, f"unknown key{hint}")
    if kind == "missing":
        return Problem(loc, "required key is missing")
    pattern = err.get("ctx", {}).get("pattern")
    if kind == "string_pattern_mismatch" and pattern in _PATTERNS:
        what, allowed_text = _PATTERNS[pattern]
        return Problem(loc, f"{value!r} is not {what}: {allowed_text}")
    msg = err["msg"]
    for prefix in _PREFIXES:
        msg = msg.removeprefix(prefix)
    if isinstance(value, str | int | float | bool) and repr(value) not in msg:
        msg += f" (got {value!r})"
    return Problem(loc, msg)


def allowed_keys(root: type[BaseModel], loc: Loc) -> list[str]:
    """The keys the model at ``loc`` under ``root`` accepts; empty when ``loc`` is not a model."""
    kind: Any = root
    for part in loc:
        kind = _unwrap(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            field = kind.model_fields.get(str(part))
            if field is None:
                return []
            kind = field.annotation
        elif get_origin(kind) is dict:
            kind = get_args(kind)[1]
        elif get_origin(kind) is tuple and isinstance(part, int):
            kind = get_args(kind)[0]
        else:
            return []
    kind = _unwrap(kind)
    return list(kind.model_fields) if isinstance(kind, type) and issubclass(kind, BaseModel) else []


def _unwrap(kind: Any) -> Any:
    """``X`` out of ``Annotated[X, ...]`` and ``X | None``."""
    while True:
        origin = get_origin(kind)
        if origin is Annotated:
            kind = get_args(kind)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(kind) if a is not type(None)]
            if len(members) != 1:
                return kind
            kind = members[0]
        else:
            return kind
