"""``nbops lint``: the spec and every stage notebook checked statically, all problems at once."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from nbops.errors import InputError
from nbops.notebook.reader import read_notebook
from nbops.notebook.tags import METRICS, cell_tags, is_skipped
from nbops.spec import Pipeline, check_pipeline
from nbops.stage.contract import load_contract


def lint(pipeline_file: Path) -> list[str]:
    """Every problem found, as one paragraph each; an empty list means clean.

    The spec's problems come first, then those of each stage's notebook and contract; a spec
    with problems does not stop the notebooks of its valid stages from being checked.
    """
    pipeline, problems = check_pipeline(pipeline_file)
    if pipeline is not None:
        for name in pipeline.runnable():
            problems += _stage_problems(pipeline, name)
    return problems


def _stage_problems(pipeline: Pipeline, name: str) -> list[str]:
    """The contract's problem, if any, and the tag problems of the notebook whenever it can be read."""
    problems: list[str] = []
    try:
        contract = load_contract(pipeline, name)
        cells, where = contract.notebook.node.cells, contract.where
        if contract.stage.test_parameters:  # what `nbops test` would inject, checked as the spec's own
            try:
                load_contract(pipeline, name, contract.stage.test_parameters)
            except InputError as exc:
                problems.append(f"{exc} (with the stage's test_parameters, as `nbops test` runs it)")
    except InputError as exc:
        problems.append(str(exc))
        path = pipeline.notebook_path(name)
        try:
            cells, where = read_notebook(path).node.cells, f"{path} (stage '{name}')"
        except InputError:
            return problems
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
    if not pipeline.frozen:
        problems += _uncarried_imports(pipeline, name, cells, where)
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
