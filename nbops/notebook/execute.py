"""Parameterize a notebook with Papermill and execute it with the nbops engine."""

from __future__ import annotations

import ast
import copy
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbformat import NotebookNode

from nbops.notebook.archive import NotebookArchive
from nbops.notebook.overrides import check_injected_source
from nbops.notebook.progress import CellClock, CellProgress
from nbops.notebook.reader import KERNEL_NAME
from nbops.notebook.redact import RedactingStream, Redactor
from nbops.notebook.tags import INJECTED, METRICS, cell_tags, is_skipped
from nbops.status import StageStatus

if TYPE_CHECKING:
    from nbops.notebook.engine import EarlyKernel, Hooks
    from nbops.notebook.outcome import Outcome

SOURCE_INDEX = "nbops_source_index"
"""Cell metadata key holding a cell's index in the source notebook, from :func:`parameterize`
until :func:`execute` takes it off (the archive never shows it)."""
AUTOSAVE_SECONDS = 30
"""While a cell runs and prints, the notebook is saved at most this often (Papermill's default)."""
CHECKPOINT_SECONDS = 5.0
"""While the notebook runs, its saves are checkpointed (copied to a remote store) at most this
often; ``NBOPS_CHECKPOINT_SECONDS`` sets another interval (0: every save; not a number: this)."""
ENV_CHECKPOINT_SECONDS = "NBOPS_CHECKPOINT_SECONDS"
KERNEL_ENV = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
"""Set in the kernel unless the stage's environment sets them. MLflow's artifact progress bars
(widgets, now that the runner has ipywidgets) are nbops's record-keeping, not the notebook's output."""


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
    """Insert Papermill's injected-parameters cell and prove it says what was validated.

    Each cell of the copy returned is stamped with its index in ``nb`` (the source), so
    :func:`execute` names cells by it whatever was inserted or removed on the way.
    """
    from papermill.parameterize import parameterize_notebook

    nb = _with_papermill_metadata(nb)
    for index, cell in enumerate(nb.cells):
        cell.metadata[SOURCE_INDEX] = index
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
    early_kernel: EarlyKernel | None = None,
    progress: Callable[[CellProgress], None] | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> tuple[NotebookNode, Outcome]:
    """Run a parameterized notebook; the executed notebook is saved, secrets masked, as it runs.

    ``nb`` is not modified. Returns the executed notebook as archived (secrets masked) and
    the engine's :class:`~nbops.notebook.engine.Outcome`, whose cell indices are those of
    the source notebook (see :func:`parameterize`). Notebook failures are reported in the
    outcome, and so is a :class:`~nbops.notebook.engine.Terminated` or
    :class:`~nbops.notebook.engine.StageTimedOut` raised while the engine runs, whenever it
    arrives (kernel start-up, a cell, between cells, shutdown): the kernel is stopped, the
    partial notebook archived, and the outcome says KILLED or STAGE_TIMED_OUT (unless the
    notebook had failed already). One raised in the few statements before the engine starts,
    or a second one while the first is handled, propagates: callers catch ``Terminated``
    around this call too. Infrastructure trouble (the kernel does not start, nbclient breaks
    down) raises. ``early_kernel`` (started in ``cwd``) is used instead of starting one, and
    shut down at the end like one. ``progress`` is told of each code cell's start, printed lines
    (masked) and completion; ``checkpoint`` is called after a save of the running notebook, at
    most every :data:`CHECKPOINT_SECONDS`, a late save's once that interval is over (the final save is the
    caller's to copy).
    """
    redactor = Redactor.from_env()
    archive = NotebookArchive(output_path, redactor)
    nb = _prepared(nb, input_path, output_path)
    checkpoints = _Checkpoints(archive.save, checkpoint)
    hooks = _hooks(nb, kernel_env, checkpoints.saved)
    if progress is not None:
        runs = sum(1 for cell in nb.cells if cell.cell_type == "code" and not is_skipped(cell))
        hooks.progress = CellClock(runs, progress, redactor.text)
    try:
        _run_engine(
            nb,
            hooks,
            redactor,
            input_path=input_path,
            cwd=cwd,
            cell_timeout=cell_timeout,
            start_timeout=start_timeout,
            early_kernel=early_kernel,
        )
    finally:
        checkpoints.close()
    nb.metadata["nbops"] = _status_metadata(hooks.outcome)
    archive.save(nb)
    return archive.masked(), hooks.outcome


def _prepared(nb: NotebookNode, input_path: Path, output_path: Path) -> NotebookNode:
    """A copy of ``nb`` with its cells stamped with their source index (unless :func:`parameterize`
    did) and Papermill's execution metadata, without error markers of an earlier run."""
    from papermill.execute import prepare_notebook_metadata, remove_error_markers

    nb = copy.deepcopy(nb)
    if not any(SOURCE_INDEX in cell.metadata for cell in nb.cells):  # not from parameterize(): nb is the source
        for index, cell in enumerate(nb.cells):
            cell.metadata[SOURCE_INDEX] = index
    result: NotebookNode = remove_error_markers(prepare_notebook_metadata(nb, str(input_path), str(output_path)))
    return result


class _Checkpoints:
    """``save``, followed by ``checkpoint`` when the last checkpoint is old enough (the first save's at
    once); a save that comes too soon is checkpointed once the interval is over, from a timer, so the
    cells that finished before a long silent cell reach the store while it runs. :meth:`close` stops
    them before the final save, which the caller copies: no checkpoint can land after it."""

    def __init__(self, save: Callable[[Any], None], checkpoint: Callable[[], None] | None) -> None:
        self.save, self.checkpoint = save, checkpoint
        self.every = checkpoint_seconds()
        self.last = -math.inf
        self.lock = threading.Lock()
        self.timer: threading.Timer | None = None
        self.closed = checkpoint is None

    def saved(self, nb: Any) -> None:
        self.save(nb)
        with self.lock:
            if self.closed:
                return
            due = self.last + self.every - time.monotonic()
            if due <= 0:
                self._checkpoint()
            elif self.timer is None:
                self.timer = threading.Timer(due, self._deferred)
                self.timer.daemon = True
                self.timer.start()

    def _deferred(self) -> None:
        with self.lock:
            self.timer = None
            if not self.closed:
                self._checkpoint()

    def _checkpoint(self) -> None:
        assert self.checkpoint is not None  # noqa: S101 - not closed
        self.last = time.monotonic()
        self.checkpoint()

    def close(self) -> None:
        """No checkpoint from now on (one under way is waited for)."""
        with self.lock:
            self.closed = True
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None


def checkpoint_seconds(env: dict[str, str] | None = None) -> float:
    """The checkpoint interval: :data:`ENV_CHECKPOINT_SECONDS` when it is a number >= 0, else the default."""
    text = (os.environ if env is None else env).get(ENV_CHECKPOINT_SECONDS, "")
    try:
        value = float(text)
    except ValueError:
        return CHECKPOINT_SECONDS
    return value if value >= 0 and math.isfinite(value) else CHECKPOINT_SECONDS


def _hooks(nb: NotebookNode, kernel_env: Callable[[], dict[str, str]], save: Callable[[Any], None]) -> Hooks:
    """The engine's inputs for ``nb``: the kernel's environment (:data:`KERNEL_ENV` under the
    stage's), the metrics cells, and each cell's source index, taken off the cells here."""
    from nbops.notebook.engine import Hooks

    fixed = {k: v for k, v in KERNEL_ENV.items() if k not in os.environ}

    def environment() -> dict[str, str]:
        return {**fixed, **kernel_env()}

    return Hooks(
        kernel_env=environment,
        metrics_cells={
            i: metrics_names(c.source)
            for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and METRICS in cell_tags(c)
        },
        source_index=[cell.metadata.pop(SOURCE_INDEX, None) for cell in nb.cells],
        save=save,
    )


def _run_engine(
    nb: NotebookNode,
    hooks: Hooks,
    redactor: Redactor,
    *,
    input_path: Path,
    cwd: Path,
    cell_timeout: int | None,
    start_timeout: int,
    early_kernel: EarlyKernel | None,
) -> None:
    """Execute ``nb`` in place in ``cwd``; the outcome lands in ``hooks.outcome``, a
    ``Terminated`` that reaches this far included."""
    from papermill.utils import chdir

    from nbops.notebook.engine import NbopsEngine
    from nbops.notebook.outcome import Terminated

    try:
        with chdir(str(cwd)):
            NbopsEngine.execute_notebook(
                nb,
                KERNEL_NAME,
                progress_bar=False,
                log_output=False,
                autosave_cell_every=AUTOSAVE_SECONDS,
                input_path=str(input_path),
                start_timeout=start_timeout,
                execution_timeout=cell_timeout,
                nbops_hooks=hooks,
                early_kernel=early_kernel,
                stdout_file=RedactingStream(sys.stdout, redactor),
                stderr_file=RedactingStream(sys.stderr, redactor),
            )
    except Terminated as exc:  # before the kernel was asked for, or while Papermill wrapped up
        hooks.outcome.stopped_by(exc)


def _status_metadata(outcome: Outcome) -> dict[str, Any]:
    """``metadata.nbops`` of the archived notebook: how the stage ended."""
    return {
        "status": outcome.status.value,
        "failed_cell": outcome.cell_index if outcome.status is not StageStatus.SUCCEEDED else None,
        "failed_execution_count": outcome.execution_count,
        "error": outcome.ename or None,
        "limit": outcome.limit,
        "skipped_cells": outcome.skipped_cells,
    }
