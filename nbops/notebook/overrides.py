"""Parameter overrides: validated against the notebook's schema before anything runs.

Papermill's Python translator writes names verbatim and falls back to an unescaped
``str()`` for values it does not know, so nothing reaches it that is not a safe
identifier bound to a JSON value.
"""

from __future__ import annotations

import ast
import json
import keyword
from collections.abc import Iterable, Mapping
from typing import Any

from nbops.errors import InputError, did_you_mean, format_problems
from nbops.notebook.parameters import Param, ParameterSchema, conform

TRUE_WORDS = ("true", "yes", "on", "1")
"""What ``-p STAGE.NAME=VALUE`` reads as True for a ``bool`` parameter (any case, spaces around ignored)."""
FALSE_WORDS = ("false", "no", "off", "0")
"""What it reads as False."""
NONE_WORDS = ("none", "null")
"""What it reads as None for a parameter that allows it (``| None``)."""


def parse_bool(text: str) -> bool:
    """Read a command-line bool; ValueError listing every accepted spelling otherwise."""
    low = text.strip().lower()
    if low in TRUE_WORDS:
        return True
    if low in FALSE_WORDS:
        return False
    raise ValueError(
        f"expects bool, got '{text}'; write {'/'.join(TRUE_WORDS)} for True or {'/'.join(FALSE_WORDS)} "
        "for False (any case)"
    )


def safe_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be injected as a variable, or None when it can."""
    if not isinstance(name, str) or not name.isidentifier():
        return f"{name!r} is not a Python identifier"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return f"'{name}' is a Python keyword"
    if name.startswith("__") and name.endswith("__"):
        return f"'{name}' is a dunder name"
    return None


def validate_overrides(schema: ParameterSchema, overrides: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Return the overrides conformed to the schema, or raise one InputError listing every problem."""
    if not overrides:
        return {}
    if schema.cell_index is None:
        raise InputError(f"{where}: {no_parameters_cell(overrides)}")
    clean, found = override_problems(schema, overrides)
    if found:
        problems = [problem for _, problem in found]
        raise InputError(format_problems(f"{where}: {len(problems)} parameter problem(s):", problems))
    return clean


def override_problems(
    schema: ParameterSchema, overrides: Mapping[Any, Any]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The overrides conformed to the schema, and the problem of each one that is refused, by name."""
    problems: list[tuple[str, str]] = []
    clean: dict[str, Any] = {}
    for name, value in overrides.items():
        bad = safe_name_problem(name)
        if bad:
            problems.append((str(name), bad))
            continue
        param = schema.get(name)
        if param is None:
            problems.append((name, unknown_parameter(schema, name)))
            continue
        conformed, problem = conform(param, value)
        if problem:
            problems.append((name, f"parameter '{name}' {problem}"))
        else:
            clean[name] = conformed
    return clean, problems


def no_parameters_cell(overrides: Iterable[Any]) -> str:
    """Why overrides are refused by a notebook that has no parameters cell."""
    names = ", ".join(sorted(map(str, overrides)))
    return (
        "the notebook has no cell tagged 'parameters', so it takes no parameters "
        f"(overrides given: {names}). Tag the cell holding the defaults with 'parameters'."
    )


def unknown_parameter(schema: ParameterSchema, name: str) -> str:
    """Why ``name`` is refused as a parameter the notebook does not declare, with the nearest declared one."""
    declared = [p.name for p in schema.params]
    hint = did_you_mean(name, declared) or f" (declared: {', '.join(declared) or 'none'})"
    return f"unknown parameter '{name}'{hint}"


def coerce_text(param: Param, text: str) -> Any:
    """Read a command-line value according to the parameter's declared type.

    Raises:
        ValueError: the text cannot be read as that type (message says what was expected).
    """
    if param.nullable and text.strip().lower() in NONE_WORDS:
        return None
    kind = param.kind
    if kind == "str":
        return text
    if kind == "bool":
        return parse_bool(text)
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expects int, got '{text}'") from None
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expects float, got '{text}'") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        if kind == "any":
            return text
        raise ValueError(f"expects {kind} written as JSON, got '{text}'") from None
    return value


def parse_assignments(items: list[str]) -> dict[str, dict[str, str]]:
    """Split ``-p STAGE.NAME=VALUE`` items into stage -> name -> raw text."""
    result: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for item in items:
        key, sep, value = item.partition("=")
        stage, dot, name = key.partition(".")
        if not sep or not dot or not stage or not name:
            problems.append(f"'{item}' is not of the form STAGE.NAME=VALUE")
            continue
        result.setdefault(stage.strip(), {})[name.strip()] = value
    if problems:
        raise InputError(format_problems(f"-p: {len(problems)} malformed override(s):", problems))
    return result


def check_injected_source(source: str, expected: Mapping[str, Any], where: str) -> None:
    """Prove the injected cell binds exactly the expected names to the expected values.

    A last line of defence after Papermill's translator: the code must parse and every
    statement must be ``name = <literal>`` with the validated value.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise InputError(f"{where}: injected parameters do not parse ({exc.msg}).") from None
    seen: dict[str, Any] = {}
    for stmt in tree.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
            raise InputError(f"{where}: injected parameters contain a statement that is not an assignment.")
        try:
            seen[stmt.targets[0].id] = ast.literal_eval(stmt.value)
        except ValueError:
            raise InputError(f"{where}: injected value of '{stmt.targets[0].id}' is not a literal.") from None
    if json.dumps(seen, sort_keys=True) != json.dumps(dict(expected), sort_keys=True):
        raise InputError(f"{where}: injected parameters differ from the validated ones.")
