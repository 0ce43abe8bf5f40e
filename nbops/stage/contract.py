"""A stage's static contract: its notebook, parameter schema and validated parameters.

Shared by the stage command, the local runner's up-front check and ``nbops lint``, so all
three judge a stage by the same rules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops import rundate
from nbops.errors import InfraError, InputError, format_problems
from nbops.notebook.overrides import coerce_text, unknown_parameter, validate_overrides
from nbops.notebook.parameters import ParameterSchema, conform, parse_parameters
from nbops.notebook.reader import LoadedNotebook, check_python, parse_notebook, read_notebook
from nbops.notebook.redact import is_secret_name
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


def load_contract(
    pipeline: Pipeline, name: str, overrides: Mapping[str, Any] | None = None, run_date: str | None = None
) -> StageContract:
    """Read the stage's notebook and validate spec parameters plus ``overrides`` against it, with
    ``${run_date}`` resolved to ``run_date`` (default: :func:`nbops.rundate.current`)."""
    stage = pipeline.stage(name)
    path = pipeline.notebook_path(name)
    frozen = pipeline.frozen.get(name)
    notebook = read_notebook(path) if frozen is None else _read_frozen(path, name, frozen.sha256)
    check_python(notebook.node, path)
    schema = parse_parameters(notebook.node.cells, str(path))
    secret = [p.name for p in schema.params if is_secret_name(p.name)]
    if secret:
        raise InputError(
            f"{path} (stage '{name}'): parameter(s) {', '.join(secret)} look like credentials. Parameters are "
            "recorded in MLflow, the lock and Airflow's trigger form, so secrets never come from them: list the "
            "Kubernetes Secret under the stage's `secrets:` and read the value from the environment "
            "(os.environ). Rename the parameter if it is not a secret."
        )
    where = f"{path} (stage '{name}')"
    given = rundate.resolve({**stage.parameters, **(overrides or {})}, run_date or rundate.current())
    params = validate_overrides(schema, given, where)
    return StageContract(stage=stage, notebook=notebook, schema=schema, params=params)


def _read_frozen(path: Path, stage: str, expected: str) -> LoadedNotebook:
    """A promoted notebook, refused unless its bytes hash to what the promotion recorded."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InfraError(
            f"{path}: the promoted notebook of stage '{stage}' (sha256 {expected}) is not in the artifact store; "
            "publish it there (nbops promote with this NBOPS_ARTIFACT_ROOT) before the DAG runs."
        ) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the promoted notebook of stage '{stage}' ({exc.strerror}).") from exc
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected:
        raise InputError(
            f"{path}: the promoted notebook of stage '{stage}' has sha256 {actual}, but the promotion recorded "
            f"{expected}. The published copy was changed after `nbops promote`; nothing was run. Promote the "
            "pipeline again (or restore the file) and re-run the stage."
        )
    return parse_notebook(raw, path)


def coerce_overrides(schema: ParameterSchema, raw: Mapping[str, str], where: str, stage: str) -> dict[str, Any]:
    """Read the ``-p STAGE.NAME=VALUE`` texts of ``stage`` according to each parameter's declared type.

    Every problem is reported at once, each naming the key as typed (``-p train.C: expects float,
    got 'abc'``); an unknown name comes with the nearest declared one.
    """
    values: dict[str, Any] = {}
    problems = []
    for name, text in raw.items():
        key = f"-p {stage}.{name}"
        param = schema.get(name)
        if param is None:
            if schema.cell_index is None:
                values[name] = text  # validate_overrides says the notebook takes no parameters at all
            else:
                problems.append(f"{key}: {unknown_parameter(schema, name)}")
            continue
        try:
            value = coerce_text(param, text)
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
            continue
        _, problem = conform(param, value)
        if problem:
            problems.append(f"{key}: {problem}")
        else:
            values[name] = value
    if problems:
        raise InputError(format_problems(f"{where}: {len(problems)} override problem(s):", problems))
    return values
