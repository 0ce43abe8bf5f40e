"""A Papermill engine that reports what really happened to each cell.

Papermill's own engine leaves cells "completed" when the kernel dies, records no failure
on a cell timeout and counts ``sys.exit(0)`` as an error in its metadata. This engine runs
the same nbclient loop but records one :class:`Outcome`, marks the cell that was running,
skips exploration cells, reads metrics cells and hands the kernel its tracking
environment once the kernel is up, so tracking set-up overlaps kernel start-up.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import nbformat
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from traitlets import Any as AnyTrait
from traitlets.config import Config

from nbops.notebook.tags import is_skipped

ENGINE_NAME = "nbops"

_METRICS_EXPR = (
    "__import__('json').dumps({{k: float(v) for k, v in globals().items() if k in {names!r} "
    "and isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float('inf')}})"
)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by the stage command's SIGTERM handler while cells run.

    A KeyboardInterrupt because asyncio re-raises only KeyboardInterrupt and SystemExit out
    of a running task (any other BaseException would be stored on whichever task happened to
    be running, and the cell would wait forever); no ``except Exception`` swallows it either.
    """


@dataclass
class Outcome:
    """What the stage command needs to know after execution."""

    status: str = "succeeded"  # succeeded | failed | timed_out | kernel_died | killed | stopped
    cell_index: int | None = None
    ename: str = ""
    evalue: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    skipped_cells: list[int] = field(default_factory=list)


@dataclass
class Hooks:
    """Per-execution inputs and the outcome the engine fills in."""

    kernel_env: Callable[[], dict[str, str]] = dict
    metrics_cells: dict[int, list[str]] = field(default_factory=dict)
    outcome: Outcome = field(default_factory=Outcome)


class NbopsClient(PapermillNotebookClient):  # type: ignore[misc]
    """nbclient/Papermill client with nbops's failure accounting."""

    nbops_hooks = AnyTrait(None).tag(config=True)

    def execute(self, **kwargs: Any) -> Any:
        """Start the kernel, run the cells, and record language info unless the kernel died."""
        self.reset_execution_trackers()
        with self.setup_kernel(**kwargs):
            self._export_env(self.nbops_hooks.kernel_env())
            self._run_cells()
            if self.nbops_hooks.outcome.status not in ("kernel_died", "timed_out", "killed"):
                info = self.wait_for_reply(self.kc.kernel_info())
                self.nb.metadata["language_info"] = info["content"]["language_info"]
            self.set_widgets_metadata()
        return self.nb

    def _export_env(self, env: dict[str, str]) -> None:
        if not env:
            return
        code = f"import os as _nbops_os; _nbops_os.environ.update({json.dumps(env)}); del _nbops_os"
        reply = self.wait_for_reply(self.kc.execute(code, silent=True, store_history=False))
        if reply is None or reply["content"]["status"] != "ok":
            raise DeadKernelError("the kernel did not accept the nbops environment")

    def _run_cells(self) -> None:
        hooks: Hooks = self.nbops_hooks
        outcome = hooks.outcome
        for index, cell in enumerate(self.nb.cells):
            if cell.cell_type == "code" and is_skipped(cell):
                outcome.skipped_cells.append(index)
                cell.outputs = []
                cell.execution_count = None
                cell.metadata.setdefault("nbops", {})["skipped"] = True
                continue
            try:
                self.nb_man.cell_start(cell, index)
                self.execute_cell(cell, index)
            except CellExecutionError as exc:
                if exc.ename == "SystemExit" and str(exc.evalue).strip() in ("", "0", "None"):
                    outcome.status, outcome.cell_index = "stopped", index
                    break
                self.nb_man.cell_exception(self.nb.cells[index], cell_index=index, exception=exc)
                self._fail(outcome, "failed", index, exc.ename, str(exc.evalue))
                break
            except CellTimeoutError:
                timeout = self._get_timeout(cell)
                self._mark(index, "CellTimeoutError", f"cell {index} ran longer than the {timeout} s cell timeout")
                self._fail(outcome, "timed_out", index, "CellTimeoutError", f"cell timeout of {timeout} s exceeded")
                break
            except DeadKernelError as exc:
                self._mark(index, "DeadKernelError", f"the kernel died while cell {index} ran ({exc})")
                self._fail(outcome, "kernel_died", index, "DeadKernelError", "kernel died")
                break
            except Terminated:
                self._mark(index, "Terminated", f"the stage was terminated (SIGTERM) while cell {index} ran")
                self._fail(outcome, "killed", index, "Terminated", "SIGTERM")
                break
            finally:
                self.nb_man.cell_complete(self.nb.cells[index], cell_index=index)
            if index in hooks.metrics_cells:
                outcome.metrics.update(self._read_metrics(hooks.metrics_cells[index]))

    def _fail(self, outcome: Outcome, status: str, index: int, ename: str, evalue: str) -> None:
        outcome.status, outcome.cell_index, outcome.ename, outcome.evalue = status, index, ename, evalue
        if status in ("kernel_died", "timed_out", "killed"):
            self.shutdown_kernel = "immediate"

    def _mark(self, index: int, ename: str, evalue: str) -> None:
        """Record on the cell itself that it did not complete (Papermill would not)."""
        cell = self.nb.cells[index]
        cell.outputs.append(
            nbformat.v4.new_output(  # type: ignore[no-untyped-call]
                "error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]
            )
        )
        self.nb_man.cell_exception(cell, cell_index=index)

    def _read_metrics(self, names: list[str]) -> dict[str, float]:
        expr = _METRICS_EXPR.format(names=sorted(set(names)))
        msg_id = self.kc.execute("", silent=True, store_history=False, user_expressions={"m": expr})
        reply = self.wait_for_reply(msg_id)
        if reply is None:
            return {}
        result = reply["content"].get("user_expressions", {}).get("m", {})
        if result.get("status") != "ok":
            return {}
        text = result.get("data", {}).get("text/plain", "''")
        try:
            decoded = json.loads(ast.literal_eval(text))
            return {str(k): float(v) for k, v in decoded.items()}
        except (ValueError, TypeError, SyntaxError):
            return {}


class NbopsEngine(NBClientEngine):  # type: ignore[misc]
    """Papermill engine entry point; kwargs flow to :class:`NbopsClient` as traitlets."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        start_timeout = kwargs.pop("start_timeout", 60)
        timeout = kwargs.pop("execution_timeout", None)
        kwargs.pop("input_path", None)
        # IPC sockets in a private temp dir: no TCP port is opened for the kernel.
        sockets = tempfile.mkdtemp(prefix="nbops-kernel-")
        config = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}})
        client = NbopsClient(
            nb_man,
            kernel_name=kernel_name,
            startup_timeout=start_timeout,
            timeout=timeout,
            log=nb_man_logger(),
            config=config,
            **kwargs,
        )
        try:
            return client.execute()
        finally:
            shutil.rmtree(sockets, ignore_errors=True)


def nb_man_logger() -> Any:
    """Papermill's logger, so engine messages land where Papermill's do."""
    from papermill.log import logger

    return logger


papermill_engines.register(ENGINE_NAME, NbopsEngine)
