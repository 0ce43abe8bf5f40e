"""Parameterize a notebook with Papermill and execute it with the nbops engine."""

from __future__ import annotations

import ast
import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbformat import NotebookNode

from nbops.notebook.overrides import check_injected_source
from nbops.notebook.redact import RedactingStream, Redactor
from nbops.notebook.tags import INJECTED, METRICS, cell_tags

KERNEL_NAME = "python3"
"""Stages always run on the native Python kernel of the stage's own environment."""
REDACTED = "nbops-redacted://"
"""Papermill path prefix: every save of the executed notebook goes through the redactor."""


class _RedactingHandler:
    """Papermill I/O handler writing notebooks to local files with secrets masked."""

    redactor = Redactor()

    @classmethod
    def write(cls, buf: str, path: str) -> None:
        target = Path(path.removeprefix(REDACTED))
        target.write_text(cls.redactor.notebook_json(buf), encoding="utf-8")

    @classmethod
    def read(cls, path: str) -> str:
        return Path(path.removeprefix(REDACTED)).read_text(encoding="utf-8")

    @classmethod
    def listdir(cls, path: str) -> list[str]:
        return [str(p) for p in Path(path.removeprefix(REDACTED)).iterdir()]

    @classmethod
    def pretty_path(cls, path: str) -> str:
        return path.removeprefix(REDACTED)


_registered = False


def _redacting_target(output_path: Path, redactor: Redactor) -> str:
    global _registered
    if not _registered:
        from papermill.iorw import papermill_io

        papermill_io.register(REDACTED, _RedactingHandler)
        _registered = True
    _RedactingHandler.redactor = redactor
    return REDACTED + str(output_path)


def metrics_names(source: str) -> list[str]:
    """Names assigned at the top level of a metrics cell (magics are ignored)."""
    lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return []
    names: list[str] = []
    for stmt in tree.body:
        targets: list[ast.expr] = []
        if isinstance(stmt, ast.Assign):
            targets = list(stmt.targets)
        elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
            targets = [stmt.target]
        for target in targets:
            for node in ast.walk(target):
                if isinstance(node, ast.Name) and node.id not in names:
                    names.append(node.id)
    return names


def parameterize(nb: NotebookNode, parameters: dict[str, Any], where: str) -> NotebookNode:
    """Insert Papermill's injected-parameters cell and prove it says what was validated."""
    from papermill.parameterize import parameterize_notebook

    nb = _with_papermill_metadata(nb)
    if not parameters:
        return nb
    result: NotebookNode = parameterize_notebook(nb, parameters, kernel_name=KERNEL_NAME, language="python")
    injected = next(c for c in result.cells if INJECTED in cell_tags(c))
    body = "\n".join(ln for ln in injected.source.splitlines() if not ln.lstrip().startswith("#"))
    check_injected_source(body, parameters, where)
    return result


def _with_papermill_metadata(nb: NotebookNode) -> NotebookNode:
    """A copy with the metadata Papermill's loader adds (``tags`` and ``papermill`` on every cell)."""
    from papermill import __version__ as papermill_version

    nb = copy.deepcopy(nb)
    nb.metadata.setdefault(
        "papermill",
        {"default_parameters": {}, "parameters": {}, "environment_variables": {}, "version": papermill_version},
    )
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
        cell.metadata.setdefault("papermill", {})
    return nb


def execute(
    nb: NotebookNode,
    *,
    input_path: Path,
    output_path: Path,
    cwd: Path,
    cell_timeout: int | None,
    kernel_env: Callable[[], dict[str, str]],
    start_timeout: int = 60,
) -> tuple[NotebookNode, Any]:
    """Run a parameterized notebook; the executed notebook is saved after every cell.

    Returns the executed notebook and the engine's :class:`~nbops.notebook.engine.Outcome`.
    Only infrastructure trouble raises; notebook failures are reported in the outcome.
    """
    from papermill.engines import papermill_engines
    from papermill.execute import prepare_notebook_metadata, remove_error_markers
    from papermill.iorw import write_ipynb
    from papermill.utils import chdir

    from nbops.notebook.engine import ENGINE_NAME, Hooks

    hooks = Hooks(
        kernel_env=kernel_env,
        metrics_cells={
            i: metrics_names(c.source)
            for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and METRICS in cell_tags(c)
        },
    )
    nb = prepare_notebook_metadata(nb, str(input_path), str(output_path))
    nb = remove_error_markers(nb)
    redactor = Redactor.from_env()
    target = _redacting_target(output_path, redactor)
    with chdir(str(cwd)):
        executed = papermill_engines.execute_notebook_with_engine(
            ENGINE_NAME,
            nb,
            input_path=str(input_path),
            output_path=target,
            kernel_name=KERNEL_NAME,
            progress_bar=False,
            log_output=False,
            start_timeout=start_timeout,
            execution_timeout=cell_timeout,
            nbops_hooks=hooks,
            stdout_file=RedactingStream(sys.stdout, redactor),
            stderr_file=RedactingStream(sys.stderr, redactor),
        )
    executed.metadata["nbops"] = {
        "status": hooks.outcome.status,
        "failed_cell": hooks.outcome.cell_index if hooks.outcome.status != "succeeded" else None,
        "error": hooks.outcome.ename or None,
        "skipped_cells": hooks.outcome.skipped_cells,
    }
    write_ipynb(executed, target)
    # Callers (the HTML export) see the notebook as archived: secrets masked.
    import nbformat

    masked = nbformat.reads(redactor.notebook_json(nbformat.writes(executed)), as_version=4)  # type: ignore[no-untyped-call]
    return masked, hooks.outcome
