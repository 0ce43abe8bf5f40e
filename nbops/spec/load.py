"""Loading a pipeline file: every problem of the spec and of its stage graph, found at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from nbops.errors import InputError, format_problems
from nbops.spec.messages import describe
from nbops.spec.models import DEFAULT_IMAGE, StageSettings, StageSpec, _Model
from nbops.spec.pipeline import Pipeline, PipelineSpec
from nbops.spec.source import SpecSource, read_spec
from nbops.spec.stage_graph import graph_problems, stage_problems

_M = TypeVar("_M", bound=_Model)


@dataclass(frozen=True)
class SpecCheck:
    """What checking a pipeline file found: the pipeline as far as it is valid, every problem, the source."""

    pipeline: Pipeline | None
    """The whole pipeline when the spec is valid; otherwise its valid stages (None when none is)."""
    problems: list[str] = field(default_factory=list)
    """Each ``file:line: field.path: message`` (or ``file: message`` when the file cannot be read)."""
    source: SpecSource | None = None
    """The file as read, to place further problems on its lines; None when it cannot be read or parsed."""


def load_pipeline(path: str | Path) -> Pipeline:
    """Read, parse and validate a pipeline file, reporting every problem at once.

    Raises:
        InputError: the file is missing, is not YAML, or breaks the spec (one error listing
            every problem, each naming the file, its line and the field path).
    """
    source = read_spec(path)
    checked = check_source(source)
    if checked.problems or checked.pipeline is None:
        problems = checked.problems
        raise InputError(format_problems(f"{source.path}: {len(problems)} problem(s) in the pipeline spec:", problems))
    return checked.pipeline


def check_pipeline(path: str | Path) -> tuple[Pipeline | None, list[str]]:
    """Every problem of a pipeline file, and the pipeline as far as it is valid (for ``nbops lint``).

    Each problem is one line naming the file, as ``load_pipeline`` reports them. When the spec
    breaks, the pipeline returned keeps the stages whose own entries are valid once their bad
    keys are left out, so their notebooks can still be checked; it is None when the file cannot
    be read or parsed, or no stage survives. Never raises for a bad file.
    """
    checked = check_spec(path)
    return checked.pipeline, checked.problems


def check_spec(path: str | Path) -> SpecCheck:
    """:func:`check_pipeline`, with the source kept to place more problems on its lines. Never raises."""
    try:
        source = read_spec(path)
    except InputError as exc:
        return SpecCheck(pipeline=None, problems=[str(exc)])
    return check_source(source)


def check_source(source: SpecSource) -> SpecCheck:
    """Validate a read spec, then its stage graph; on a broken spec, the graph of its valid part."""
    data = source.data
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        found = [describe(err, PipelineSpec) for err in exc.errors()]
        partial = _partial_spec(data)
        stages = data.get("stages")
        names = [n for n in stages if isinstance(n, str)] if isinstance(stages, dict) else []
        found += stage_problems(partial.stages if partial else {}, names)
        pipeline = None if partial is None else Pipeline(spec=partial, path=source.path, sha256=source.sha256)
        return SpecCheck(pipeline, source.render_all(found), source)
    problems = source.render_all(graph_problems(spec))
    return SpecCheck(Pipeline(spec=spec, path=source.path, sha256=source.sha256), problems, source)


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
