"""A pipeline file as read: its bytes, its data, and the YAML node tree that gives every field its line.

Every problem of a spec is rendered in one format, by :meth:`SpecSource.render`::

    /path/pipeline.yaml:12: stages.train.notebook: notebooks/trian.ipynb: notebook not found; did you mean ...?

the file, the line of the field (the nearest enclosing field's when the field itself is not
written, as for a missing key), the field path and the message.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from nbops.errors import InputError

Loc = tuple[str | int, ...]
"""A field path: mapping keys and sequence indices from the top of the file (pydantic's ``loc``)."""


class Problem(NamedTuple):
    """One problem of a spec: the field it is about, the message, and (when it differs) where to point."""

    loc: Loc
    message: str
    at: Loc | None = None
    """The path whose line is reported, when more precise than ``loc`` (an item of a list, say)."""


def field_path(loc: Loc) -> str:
    """``stages.train.needs``, or ``(top level)`` for the empty path."""
    return ".".join(str(part) for part in loc) or "(top level)"


@dataclass(frozen=True)
class SpecSource:
    """A pipeline file read and parsed: the resolved path, its bytes, its data and its node tree."""

    path: Path
    raw: bytes
    data: dict[str, Any]
    node: yaml.Node

    @property
    def sha256(self) -> str:
        """sha256 of the file's bytes."""
        return hashlib.sha256(self.raw).hexdigest()

    def line(self, loc: Loc) -> int:
        """The line (1-based) of the field at ``loc``, or of its nearest enclosing field that is written."""
        return line_of(self.node, loc)

    def render(self, problem: Problem) -> str:
        """``file:line: field.path: message``."""
        return f"{self.path}:{self._line_of(problem)}: {field_path(problem.loc)}: {problem.message}"

    def render_all(self, problems: list[Problem]) -> list[str]:
        """Each problem rendered, in the order of their lines in the file."""
        return [self.render(p) for p in sorted(problems, key=self._line_of)]

    def _line_of(self, problem: Problem) -> int:
        return self.line(problem.at if problem.at is not None else problem.loc)


def line_of(node: yaml.Node, loc: Loc) -> int:
    """Line (1-based) of the field at ``loc`` under ``node``: the line of its key in a mapping, of its
    item in a sequence; the nearest written parent's line when the path goes further than the file."""
    best = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            # The last key wins, as it does when PyYAML builds the mapping.
            pair = next((kv for kv in reversed(node.value) if getattr(kv[0], "value", None) == str(part)), None)
            if pair is None:
                return best
            best, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            best = node.start_mark.line + 1
        else:
            return best
    return best


def read_spec(path: str | Path) -> SpecSource:
    """Read and parse a pipeline file, once: the data is built from the node tree that gives the lines.

    Raises:
        InputError: the file is missing or unreadable, is not UTF-8 YAML, or is not a mapping;
            the message names the file and, for a syntax error, the line.
    """
    file = Path(path).resolve()
    try:
        raw = file.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{file}: pipeline file not found.") from exc
    except OSError as exc:
        raise InputError(f"{file}: cannot read pipeline file ({exc.strerror}).") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"{file}:{line}: not valid YAML: byte 0x{raw[exc.start]:02x} is not UTF-8 text.") from exc
    node, data = _parse(file, text)
    if node is None or not isinstance(data, dict):
        line = node.start_mark.line + 1 if node is not None else 1
        raise InputError(f"{file}:{line}: expected a mapping with 'name' and 'stages' at the top level.")
    return SpecSource(path=file, raw=raw, data=data, node=node)


def _parse(file: Path, text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree of ``text`` and the data built from it (one parse); InputError naming the line."""
    node: yaml.Node | None = None
    try:
        loader = yaml.SafeLoader(text)  # refuses characters YAML does not allow, before any parsing
    except yaml.YAMLError as exc:
        raise InputError(yaml_problem(file, exc, text)) from exc
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    except yaml.YAMLError as exc:
        raise InputError(yaml_problem(file, exc, text)) from exc
    except ValueError as exc:  # a scalar YAML types but cannot build, as the date 2026-13-45
        where = f"{file}:{_unbuildable_line(node)}" if node is not None else str(file)
        raise InputError(f"{where}: not valid YAML: {exc}") from exc
    finally:
        loader.dispose()


def _unbuildable_line(node: yaml.Node) -> int:
    """The line of the first scalar under ``node`` that cannot be built (the node's own line if none)."""
    loader = yaml.SafeLoader("")
    todo = [node]
    while todo:
        current = todo.pop(0)
        if isinstance(current, yaml.ScalarNode):
            try:
                loader.construct_object(current)
            except ValueError:
                return current.start_mark.line + 1
        elif isinstance(current, yaml.MappingNode):
            todo += [part for pair in current.value for part in pair]
        elif isinstance(current, yaml.SequenceNode):
            todo += current.value
    return node.start_mark.line + 1


def yaml_problem(file: Path, exc: yaml.YAMLError, text: str) -> str:
    """A YAML syntax error of ``text`` on one line, naming the file and the line (PyYAML says ``<unicode string>``)."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[: exc.position].count("\n") + 1
        return f"{file}:{line}: not valid YAML: character #x{exc.character:04x} is not allowed in YAML"
    mark = (exc.problem_mark or exc.context_mark) if isinstance(exc, yaml.MarkedYAMLError) else None
    if not isinstance(exc, yaml.MarkedYAMLError) or mark is None:
        return f"{file}: not valid YAML: {' '.join(str(exc).split())}"
    what = exc.problem or exc.context or "syntax error"
    message = f"{file}:{mark.line + 1}: not valid YAML: {what} (column {mark.column + 1})"
    if exc.problem and exc.context:
        ctx = exc.context_mark
        elsewhere = ctx is not None and (ctx.line, ctx.column) != (mark.line, mark.column)
        started = f" at line {ctx.line + 1}, column {ctx.column + 1}" if ctx is not None and elsewhere else ""
        message += f", {exc.context}{started}"
    if exc.note:
        message += f"; {exc.note}"
    return message
