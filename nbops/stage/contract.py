"""A stage's static contract: its notebook, parameter schema and validated parameters.

Shared by the stage command, the local runner's up-front check and ``nbops lint``, so all
three judge a stage by the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nbops.errors import InputError, format_problems
from nbops.notebook.overrides import coerce_text, validate_overrides
from nbops.notebook.parameters import ParameterSchema, parse_parameters
from nbops.notebook.reader import LoadedNotebook, read_notebook
from nbops.spec import Pipeline, ResolvedStage


@dataclass(frozen=True)
class StageContract:
    """A stage ready to execute: nothing here has run any code."""

    stage: ResolvedStage
    notebook: LoadedNotebook
    schema: ParameterSchema
    params: dict[str, Any]

    @property
    def where(self) -> str:
        """How errors name this stage's notebook."""
        return f"{self.notebook.path} (stage '{self.stage.name}')"


def load_contract(pipeline: Pipeline, name: str, overrides: Mapping[str, Any] | None = None) -> StageContract:
    """Read the stage's notebook and validate spec parameters plus ``overrides`` against it."""
    stage = pipeline.stage(name)
    path = pipeline.notebook_path(name)
    notebook = read_notebook(path)
    language = notebook.node.metadata.get("kernelspec", {}).get("language", "python")
    if language != "python":
        raise InputError(f"{path}: kernel language is '{language}'; nbops stages run Python notebooks.")
    schema = parse_parameters(notebook.node.cells, str(path))
    where = f"{path} (stage '{name}')"
    params = validate_overrides(schema, {**stage.parameters, **(overrides or {})}, where)
    return StageContract(stage=stage, notebook=notebook, schema=schema, params=params)


def coerce_overrides(schema: ParameterSchema, raw: Mapping[str, str], where: str) -> dict[str, Any]:
    """Read ``-p`` texts according to each parameter's declared type, reporting every problem."""
    values: dict[str, Any] = {}
    problems = []
    for name, text in raw.items():
        param = schema.get(name)
        if param is None:
            values[name] = text  # validate_overrides names it as unknown, with a suggestion
            continue
        try:
            values[name] = coerce_text(param, text)
        except ValueError as exc:
            problems.append(f"-p {name}: {exc}")
    if problems:
        raise InputError(format_problems(f"{where}: {len(problems)} override problem(s):", problems))
    return values
