"""``nbops lint``: the spec and every stage notebook checked statically, all problems at once."""

from __future__ import annotations

from pathlib import Path

from nbops.api import PIPELINE_FILE, find_pipeline_file
from nbops.errors import InputError
from nbops.notebook.reader import read_notebook
from nbops.notebook.tags import METRICS, cell_tags, is_skipped
from nbops.spec import Pipeline, check_pipeline
from nbops.stage.contract import load_contract


def lint(pipeline_file: Path, *, search_upward: bool = True) -> list[str]:
    """Every problem found, as one paragraph each; an empty list means clean.

    The spec's problems come first, then those of each stage's notebook and contract; a spec
    with problems does not stop the notebooks of its valid stages from being checked. With
    ``search_upward``, the default ``pipeline.yaml`` is looked for as the notebook API does
    (:func:`resolve_pipeline_file`).
    """
    file = resolve_pipeline_file(pipeline_file) if search_upward else pipeline_file
    pipeline, problems = check_pipeline(file)
    if pipeline is not None:
        for name in pipeline.spec.stages:
            problems += _stage_problems(pipeline, name)
    return problems


def resolve_pipeline_file(path: Path) -> Path:
    """``path``; but the default relative ``pipeline.yaml``, when the working directory has none, is the
    nearest one above it (or ``$NBOPS_PIPELINE_FILE``), found by :func:`nbops.api.find_pipeline_file`."""
    if path == Path(PIPELINE_FILE) and not path.is_file():
        return find_pipeline_file() or path
    return path


def _stage_problems(pipeline: Pipeline, name: str) -> list[str]:
    """The contract's problem, if any, and the tag problems of the notebook whenever it can be read."""
    problems: list[str] = []
    try:
        contract = load_contract(pipeline, name)
        cells, where = contract.notebook.node.cells, contract.where
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
    return problems
