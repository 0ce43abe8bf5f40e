"""The ``parameters`` cell as a typed contract, parsed by AST and never executed.

Each assignment in the cell declares one parameter: its type comes from the annotation
when there is one, otherwise from the literal default; a trailing comment is its help.
"""

from __future__ import annotations

import ast
import io
import json
import math
import tokenize
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nbops.errors import InputError, format_problems
from nbops.notebook.tags import PARAMETERS, cell_tags

Kind = Literal["int", "float", "str", "bool", "list", "dict", "any"]

_SIMPLE: dict[str, Kind] = {
    "int": "int",
    "float": "float",
    "str": "str",
    "bool": "bool",
    "list": "list",
    "List": "list",
    "dict": "dict",
    "Dict": "dict",
    "Any": "any",
}


class Param(BaseModel):
    """One declared parameter."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Variable name.")
    kind: Kind = Field(description="JSON-level type the value must have.")
    nullable: bool = Field(False, description="Whether None is accepted.")
    default: Any = Field(None, description="Default value from the notebook.")
    help: str = Field("", description="Trailing comment of the assignment.")
    annotation: str | None = Field(None, description="Annotation as written, if any.")

    @property
    def type_label(self) -> str:
        """Human-readable type, e.g. ``float | None``."""
        return f"{self.kind} | None" if self.nullable and self.kind != "any" else self.kind


class ParameterSchema(BaseModel):
    """All parameters of one notebook, in declaration order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cell_index: int | None = Field(description="Index of the parameters cell, None when there is none.")
    params: tuple[Param, ...] = Field(description="Declared parameters.")

    def get(self, name: str) -> Param | None:
        """The parameter called ``name``, if declared."""
        return next((p for p in self.params if p.name == name), None)

    @property
    def defaults(self) -> dict[str, Any]:
        """Name -> default value."""
        return {p.name: p.default for p in self.params}


def conform(param: Param, value: Any) -> tuple[Any, str | None]:
    """Check ``value`` against ``param``'s type; return the (possibly widened) value or a problem."""
    if value is None:
        return (
            (None, None) if param.nullable or param.kind == "any" else (None, f"expects {param.type_label}, got None")
        )
    if not is_json_value(value):
        return None, f"value {value!r} is not representable as JSON"
    kind = param.kind
    ok = (
        kind == "any"
        or (kind == "bool" and isinstance(value, bool))
        or (kind == "int" and isinstance(value, int) and not isinstance(value, bool))
        or (kind == "float" and isinstance(value, int | float) and not isinstance(value, bool))
        or (kind == "str" and isinstance(value, str))
        or (kind == "list" and isinstance(value, list))
        or (kind == "dict" and isinstance(value, dict))
    )
    if not ok:
        return None, f"expects {param.type_label}, got {type(value).__name__} {json.dumps(value)[:60]}"
    if kind == "float" and isinstance(value, int):
        return float(value), None
    return value, None


def is_json_value(value: Any) -> bool:
    """True when ``value`` round-trips through JSON unchanged (finite floats, str keys)."""
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(is_json_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json_value(v) for k, v in value.items())
    return False


def find_parameters_cell(cells: list[Any]) -> list[int]:
    """Indices of code cells tagged ``parameters``."""
    return [i for i, c in enumerate(cells) if c.get("cell_type") == "code" and PARAMETERS in cell_tags(c)]


def parse_parameters(cells: list[Any], where: str) -> ParameterSchema:
    """Parse the notebook's parameters cell into a schema; ``where`` names the notebook in errors.

    Raises:
        InputError: listing every problem in the cell (non-literal default, unsupported
            annotation, statement other than an assignment, duplicate cell, ...).
    """
    indices = find_parameters_cell(cells)
    if not indices:
        return ParameterSchema(cell_index=None, params=())
    if len(indices) > 1:
        raise InputError(
            f"{where}: cells {', '.join(map(str, indices))} are all tagged 'parameters'; "
            "tag exactly one cell (Papermill only injects after the first)."
        )
    index = indices[0]
    source = cells[index].get("source", "")
    label = f"{where}, cell {index} (tagged 'parameters')"
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise InputError(
            f"{label}, line {exc.lineno}: not plain Python ({exc.msg}); "
            "the parameters cell may hold only assignments of literal values."
        ) from None
    comments = _trailing_comments(source)
    params: list[Param] = []
    problems: list[str] = []
    for stmt in tree.body:
        param, problem = _declare(stmt, comments)
        if problem:
            problems.append(f"line {stmt.lineno}: {problem}")
        elif param is not None:
            if any(p.name == param.name for p in params):
                problems.append(f"line {stmt.lineno}: '{param.name}' is assigned twice")
            params.append(param)
    if problems:
        raise InputError(format_problems(f"{label}: {len(problems)} problem(s):", problems))
    return ParameterSchema(cell_index=index, params=tuple(params))


def _declare(stmt: ast.stmt, comments: dict[int, str]) -> tuple[Param | None, str | None]:
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
        return None, None  # a docstring-like note is allowed
    annotation: ast.expr | None = None
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        if stmt.value is None:
            return None, f"'{stmt.target.id}' is annotated but has no default value"
        name, value, annotation = stmt.target.id, stmt.value, stmt.annotation
    elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        name, value = stmt.targets[0].id, stmt.value
    else:
        return None, "only 'name = literal' or 'name: type = literal' assignments are allowed here"
    try:
        default = ast.literal_eval(value)
    except ValueError:
        return None, f"the default of '{name}' is not a literal (computed values belong in a later cell)"
    if isinstance(default, tuple | set):
        default = list(default) if isinstance(default, tuple) else default
        if isinstance(default, set):
            return None, f"the default of '{name}' is a set; use a list"
    help_text = comments.get(stmt.end_lineno or stmt.lineno, "")
    if annotation is not None:
        parsed = _annotation_kind(annotation)
        if parsed is None:
            return None, (
                f"unsupported annotation '{ast.unparse(annotation)}' for '{name}' "
                "(use int, float, str, bool, list, dict, Any, optionally '| None')"
            )
        kind, nullable = parsed
        param = Param(
            name=name, kind=kind, nullable=nullable, default=None, help=help_text, annotation=ast.unparse(annotation)
        )
    else:
        kind, nullable = _literal_kind(default)
        param = Param(name=name, kind=kind, nullable=nullable, default=None, help=help_text)
    value_ok, problem = conform(param, default)
    if problem:
        return None, f"the default of '{name}' {problem}"
    return param.model_copy(update={"default": value_ok}), None


def _literal_kind(value: Any) -> tuple[Kind, bool]:
    if value is None:
        return "any", True
    for py, kind in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (list, "list"), (dict, "dict")):
        if isinstance(value, py):
            return kind, False  # type: ignore[return-value]
    return "any", False


def _annotation_kind(node: ast.expr) -> tuple[Kind, bool] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return None
    if isinstance(node, ast.Name) and node.id in _SIMPLE:
        return _SIMPLE[node.id], False
    if isinstance(node, ast.Attribute) and node.attr in _SIMPLE:  # typing.List, t.Any
        return _SIMPLE[node.attr], False
    if isinstance(node, ast.Subscript):
        base = node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
        if base == "Optional":
            inner = _annotation_kind(node.slice)
            return (inner[0], True) if inner else None
        if base in ("list", "List", "dict", "Dict"):
            return _SIMPLE[base], False
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = node.left, node.right
        if isinstance(right, ast.Constant) and right.value is None:
            inner = _annotation_kind(left)
            return (inner[0], True) if inner else None
        if isinstance(left, ast.Constant) and left.value is None:
            inner = _annotation_kind(right)
            return (inner[0], True) if inner else None
    return None


def _trailing_comments(source: str) -> dict[int, str]:
    """Line number -> text of the comment ending that line."""
    found: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                found[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError):
        pass
    return found
