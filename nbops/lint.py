"""``nbops lint``: the spec and every stage notebook checked statically, all problems at once."""

from __future__ import annotations

from pathlib import Path

from nbops.errors import InputError
from nbops.notebook.tags import METRICS, cell_tags, is_skipped
from nbops.spec import load_pipeline
from nbops.stage.contract import load_contract


def lint(pipeline_file: Path) -> list[str]:
    """Every problem found, as one paragraph each; an empty list means clean."""
    try:
        pipeline = load_pipeline(pipeline_file)
    except InputError as exc:
        return [str(exc)]
    problems: list[str] = []
    for name in pipeline.spec.stages:
        try:
            contract = load_contract(pipeline, name)
        except InputError as exc:
            problems.append(str(exc))
            continue
        cells = contract.notebook.node.cells
        for index, cell in enumerate(cells):
            tags = cell_tags(cell)
            if is_skipped(cell) and METRICS in tags:
                problems.append(
                    f"{contract.where}, cell {index}: tagged both skip and metrics; a skipped cell never "
                    "produces metrics."
                )
            if cell.get("cell_type") != "code" and tags & {"parameters", METRICS}:
                problems.append(
                    f"{contract.where}, cell {index}: a {cell.get('cell_type')} cell cannot carry "
                    f"the tags {sorted(tags & {'parameters', METRICS})}."
                )
    return problems
