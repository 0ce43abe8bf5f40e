"""``nbops lint``: the spec and every stage notebook checked statically, all problems at once.

A problem of the spec, or of a stage that the spec causes (a notebook path that names no file,
a spec parameter the notebook refuses), is placed on the spec's line, in the spec's format
(``pipeline.yaml:12: stages.train.notebook: ...``); a problem of a notebook names the notebook,
its stage and the cell.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

from nbops import rundate
from nbops.errors import InputError, did_you_mean
from nbops.notebook.overrides import no_parameters_cell, override_problems
from nbops.notebook.parameters import ParameterSchema
from nbops.notebook.reader import read_notebook
from nbops.notebook.tags import METRICS, cell_tags, is_skipped
from nbops.spec import Loc, Pipeline, Problem, SpecSource, check_spec
from nbops.stage.contract import load_contract

MAX_MAP_LENGTH = 1024
"""Airflow's default ``[core] max_map_length``: the mapped task instances one task may have."""
_NOT_SEARCHED = frozenset({"__pycache__", "node_modules"})
"""Directories (besides hidden ones: .nbops, .git, .venv, .ipynb_checkpoints) no notebook is looked for in."""


def lint(pipeline_file: Path) -> list[str]:
    """Every problem found, as one paragraph each; an empty list means clean.

    The spec's problems come first, then those of each stage's notebook and contract; a spec
    with problems does not stop the notebooks of its valid stages from being checked.
    """
    checked = check_spec(pipeline_file)
    problems = list(checked.problems)
    if checked.pipeline is not None and checked.source is not None:
        for name in checked.pipeline.runnable():
            problems += _stage_problems(checked.pipeline, checked.source, name)
    return problems


def _stage_problems(pipeline: Pipeline, source: SpecSource, name: str) -> list[str]:
    """A notebook path that names no file; else the contract's problem, if any, the spec parameters the
    notebook refuses, and the tag and import problems of the notebook whenever it can be read."""
    missing = _missing_notebook(pipeline, source, name)
    if missing is not None:
        return [missing]
    problems: list[str] = []
    try:
        # The notebook's own contract first (JSON, language, parameters cell, secrets), then each
        # spec parameter on its own line of the spec.
        contract = load_contract(_without_spec_parameters(pipeline, name), name)
        cells, where = contract.notebook.node.cells, contract.where
        problems += _parameter_problems(pipeline, source, name, contract.schema)
        problems += _sweep_problems(pipeline, source, name, contract.schema)
    except InputError as exc:
        problems.append(str(exc))
        path = pipeline.notebook_path(name)
        try:
            cells, where = read_notebook(path).node.cells, f"{path} (stage '{name}')"
        except InputError:
            return problems
    problems += _tag_problems(cells, where)
    if not pipeline.frozen:
        problems += _uncarried_imports(pipeline, name, cells, where)
    return problems


def _entry(pipeline: Pipeline, name: str) -> Loc:
    """Where a runnable's entry is in the spec: ``stages.NAME``, or ``monitor``."""
    return ("stages", name) if name in pipeline.spec.stages else ("monitor",)


def _missing_notebook(pipeline: Pipeline, source: SpecSource, name: str) -> str | None:
    """The spec's problem when a stage's notebook path names no file, with the project's nearest notebook."""
    if name in pipeline.frozen or pipeline.notebook_path(name).exists():
        return None
    notebook = pipeline.spec.entry(name).notebook
    hint = did_you_mean(notebook, _project_notebooks(pipeline.root))
    return source.render(Problem((*_entry(pipeline, name), "notebook"), f"{notebook}: notebook not found{hint}"))


def _project_notebooks(root: Path) -> list[str]:
    """Every notebook of the project (POSIX paths relative to ``root``), hidden directories left out."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _NOT_SEARCHED)
        rel = Path(folder).relative_to(root)
        found += [(rel / f).as_posix() for f in sorted(files) if f.endswith(".ipynb")]
    return found


def _without_spec_parameters(pipeline: Pipeline, name: str) -> Pipeline:
    """The pipeline with the stage's ``parameters`` and ``test_parameters`` left out, so that its
    contract judges the notebook alone and each spec parameter is reported at its own line."""
    spec = pipeline.spec
    blank: dict[str, Any] = {"parameters": {}, "test_parameters": {}}
    if name in spec.stages:
        spec = spec.model_copy(update={"stages": {**spec.stages, name: spec.stages[name].model_copy(update=blank)}})
    elif spec.monitor is not None:
        spec = spec.model_copy(update={"monitor": spec.monitor.model_copy(update=blank)})
    return pipeline.model_copy(update={"spec": spec})


def _parameter_problems(pipeline: Pipeline, source: SpecSource, name: str, schema: ParameterSchema) -> list[str]:
    """Each spec parameter (and test parameter, what `nbops test` runs) the notebook refuses, at its line."""
    entry, base = pipeline.spec.entry(name), _entry(pipeline, name)
    found: list[Problem] = []
    for key, given in (("parameters", entry.parameters), ("test_parameters", entry.test_parameters)):
        if not given:
            continue
        if schema.cell_index is None:
            found.append(Problem((*base, key), f"{entry.notebook}: {no_parameters_cell(given)}"))
            continue
        _, refused = override_problems(schema, rundate.resolve(given, rundate.current()))
        found += [Problem((*base, key, param), f"{entry.notebook}: {problem}") for param, problem in refused]
    return source.render_all(found)


def _sweep_problems(pipeline: Pipeline, source: SpecSource, name: str, schema: ParameterSchema) -> list[str]:
    """Each value of a ``grid`` (or key of a ``foreach`` set) the notebook refuses, at its line; a sweep
    larger than Airflow's default ``max_map_length``."""
    if name not in pipeline.spec.stages:
        return []
    entry, found = pipeline.spec.stages[name], []
    notebook = entry.notebook
    for key, values in (entry.grid or {}).items():
        for i, value in enumerate(values):
            _, refused = override_problems(schema, {key: value})
            found += [Problem(("stages", name, "grid", key, i), f"{notebook}: {problem}") for _, problem in refused]
    for i, point in enumerate(entry.foreach or ()):
        _, refused = override_problems(schema, point)
        found += [Problem(("stages", name, "foreach", i, k), f"{notebook}: {problem}") for k, problem in refused]
    count = len(pipeline.spec.resolved(name).static_points() or [])
    if count > MAX_MAP_LENGTH:
        field = "grid" if entry.grid is not None else "foreach"
        found.append(
            Problem(
                ("stages", name, field),
                f"{count} points; Airflow maps at most {MAX_MAP_LENGTH} task instances per task by default "
                "([core] max_map_length): split the sweep, or raise that setting where the DAG runs",
            )
        )
    return source.render_all(found)


def _tag_problems(cells: list[Any], where: str) -> list[str]:
    """Cells whose tags contradict each other or their cell type."""
    problems = []
    for index, cell in enumerate(cells):
        tags = cell_tags(cell)
        if is_skipped(cell) and METRICS in tags:
            problems.append(
                f"{where}, cell {index}: tagged both skip and metrics; a skipped cell never produces metrics."
            )
        if cell.get("cell_type") != "code" and tags & {"parameters", METRICS}:
            problems.append(
                f"{where}, cell {index}: a {cell.get('cell_type')} cell cannot carry "
                f"the tags {sorted(tags & {'parameters', METRICS})}."
            )
    return problems


def _uncarried_imports(pipeline: Pipeline, name: str, cells: list[Any], where: str) -> list[str]:
    """Modules of the project the notebook imports (beside it) that its stage does not carry into
    a promoted run (``files:``): the import works here and fails in the pod."""
    root = pipeline.root.resolve()
    notebook_dir = (root / pipeline.spec.entry(name).notebook).parent
    carried = set(pipeline.stage_files(name))
    problems = []
    for module in sorted(_imported_modules(cells)):
        found = [notebook_dir / f"{module}.py", *sorted((notebook_dir / module).rglob("*.py"))]
        missing = [
            p.relative_to(root).as_posix()
            for p in found
            if p.is_file() and p.relative_to(root).as_posix() not in carried
        ]
        if missing:
            problems.append(
                f"{where}: imports '{module}' from the project, but the stage does not carry {', '.join(missing)} "
                "into its promoted run, where the import would fail; add a glob for it to the stage's or the "
                "pipeline's files:."
            )
    return problems


def _imported_modules(cells: list[Any]) -> set[str]:
    """Top-level names of the modules absolutely imported by the notebook's code cells (magics skipped)."""
    names: set[str] = set()
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = "\n".join(
            ln for ln in str(cell.get("source", "")).splitlines() if not ln.lstrip().startswith(("%", "!"))
        )
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names
