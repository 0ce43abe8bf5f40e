"""A Papermill engine that reports what really happened to each cell.

Papermill's own engine leaves cells "completed" when the kernel dies, records no failure
on a cell timeout and counts ``sys.exit(0)`` as an error in its metadata. This engine runs
the same nbclient loop but records one :class:`Outcome`, marks the cell that was running,
skips exploration cells, reads metrics cells and hands the kernel its tracking
environment once the kernel is up, so tracking set-up overlaps kernel start-up. Cells are
named by their index in the source notebook (:attr:`Hooks.source_index`), never by their
position in the executed one, which has Papermill's injected cell and lacks its old error
markers.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import nbformat
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
from traitlets import Any as AnyTrait
from traitlets.config import Config

from nbops.context import WITHHELD
from nbops.notebook.outcome import Outcome, StageTimedOut, Terminated
from nbops.notebook.progress import CellClock
from nbops.notebook.tags import is_skipped
from nbops.status import StageStatus

ENGINE_NAME = "nbops"

_METRICS_EXPR = (
    "__import__('json').dumps({{k: float(v) for k, v in globals().items() if k in {names!r} "
    "and isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float('inf')}})"
)
_KERNEL_GONE = frozenset(
    {StageStatus.KERNEL_DIED, StageStatus.CELL_TIMED_OUT, StageStatus.STAGE_TIMED_OUT, StageStatus.KILLED}
)


@dataclass
class Hooks:
    """Per-execution inputs and the outcome the engine fills in.

    ``source_index`` maps each cell of the executed notebook to its index in the source
    notebook (None for the injected-parameters cell); ``metrics_cells`` is keyed by position
    in the executed notebook; ``save`` writes the notebook whenever Papermill would;
    ``progress`` is told when each code cell that runs starts, prints and completes.
    """

    kernel_env: Callable[[], dict[str, str]] = dict
    metrics_cells: dict[int, list[str]] = field(default_factory=dict)
    source_index: list[int | None] | None = None
    save: Callable[[Any], None] | None = None
    progress: CellClock | None = None
    outcome: Outcome = field(default_factory=Outcome)

    def source(self, index: int) -> int | None:
        """The source index of the executed notebook's cell ``index``."""
        return index if self.source_index is None else self.source_index[index]


class NbopsClient(PapermillNotebookClient):  # type: ignore[misc]
    """nbclient/Papermill client with nbops's failure accounting."""

    nbops_hooks = AnyTrait(None).tag(config=True)

    def execute(self, **kwargs: Any) -> Any:
        """Start the kernel, run the cells, and record language info unless the kernel is gone.

        A :class:`Terminated` (or :class:`StageTimedOut`) is never raised from here: during
        start-up, between cells or during shutdown it is recorded in the outcome and the
        kernel is stopped.
        """
        hooks: Hooks = self.nbops_hooks
        self.reset_execution_trackers()
        try:
            # cleanup_kc: a kernel started early (EarlyKernel) is shut down here like one of our own.
            with self.setup_kernel(cleanup_kc=True, **kwargs):
                try:
                    self._export_env(hooks.kernel_env())
                    self._run_cells()
                except Terminated as exc:  # between cells: no cell to mark
                    hooks.outcome.stopped_by(exc)
                    self._give_up()
                if hooks.outcome.status not in _KERNEL_GONE:
                    info = self.wait_for_reply(self.kc.kernel_info())
                    self.nb.metadata["language_info"] = info["content"]["language_info"]
                self.set_widgets_metadata()
        except Terminated as exc:  # while the kernel started or stopped
            hooks.outcome.stopped_by(exc)
            self._give_up()
            self._stop_kernel()
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
            source = hooks.source(index)
            if cell.cell_type == "code" and is_skipped(cell):
                if source is not None:
                    outcome.skipped_cells.append(source)
                cell.outputs = []
                cell.execution_count = None
                cell.metadata.setdefault("nbops", {})["skipped"] = True
                continue
            clock = hooks.progress if cell.cell_type == "code" else None
            try:
                self.nb_man.cell_start(cell, index)
                if clock is not None:
                    clock.started(source)
                self.execute_cell(cell, index)
            except (CellExecutionError, CellTimeoutError, DeadKernelError, Terminated) as exc:
                self._cell_stopped(index, exc)
                break
            finally:
                self.nb_man.cell_complete(self.nb.cells[index], cell_index=index)
                if clock is not None:
                    clock.done()
            if index in hooks.metrics_cells:
                outcome.metrics.update(self._read_metrics(hooks.metrics_cells[index]))
        if outcome.status in _KERNEL_GONE:
            self._give_up()

    def process_message(self, msg: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        output = super().process_message(msg, *args, **kwargs)
        clock = self.nbops_hooks.progress
        if clock is not None and output is not None:
            clock.printed(output)
        elif clock is not None and msg.get("msg_type") == "update_display_data":  # a display updated in place
            clock.printed({"output_type": "display_data", "data": msg.get("content", {}).get("data", {})})
        return output

    def _cell_stopped(self, index: int, exc: BaseException) -> None:
        """Record why the cell at ``index`` ended the run, and say so on the cell if nbclient would not."""
        outcome: Outcome = self.nbops_hooks.outcome
        name = _cell_name(self.nbops_hooks.source(index))
        if isinstance(exc, CellExecutionError):
            if exc.ename == "SystemExit" and str(exc.evalue).strip() in ("", "0", "None"):
                self._record(StageStatus.STOPPED, index, "", "")
                return
            self.nb_man.cell_exception(self.nb.cells[index], cell_index=index, exception=exc)
            self._record(StageStatus.FAILED, index, exc.ename, str(exc.evalue))
            outcome.traceback = plain_lines(exc.traceback)
        elif isinstance(exc, CellTimeoutError):
            timeout = self._get_timeout(self.nb.cells[index])
            self._mark(index, "CellTimeoutError", f"{name} ran longer than the {timeout} s cell timeout")
            self._record(StageStatus.CELL_TIMED_OUT, index, "CellTimeoutError", f"cell timeout of {timeout} s exceeded")
            outcome.limit = float(timeout) if timeout else None
        elif isinstance(exc, DeadKernelError):
            self._mark(index, "DeadKernelError", f"the kernel died while {name} ran ({exc})")
            self._record(StageStatus.KERNEL_DIED, index, "DeadKernelError", "kernel died")
        elif isinstance(exc, Terminated):
            if isinstance(exc, StageTimedOut):
                self._mark(index, exc.ename, f"{exc.evalue} while {name} ran")
            else:
                self._mark(index, exc.ename, f"the stage was terminated ({exc.signal}) while {name} ran")
            outcome.stopped_by(exc, self.nbops_hooks.source(index), self._execution_count(index))

    def _record(self, status: StageStatus, index: int, ename: str, evalue: str) -> None:
        outcome: Outcome = self.nbops_hooks.outcome
        outcome.status, outcome.ename, outcome.evalue = status, ename, evalue
        outcome.cell_index = self.nbops_hooks.source(index)
        outcome.execution_count = self._execution_count(index)

    def _execution_count(self, index: int) -> int | None:
        count = self.nb.cells[index].get("execution_count")
        return count if isinstance(count, int) else None

    def _give_up(self) -> None:
        """Stop waiting for the kernel: it is killed at once and nbclient's pollers are cancelled.

        nbclient leaves the tasks polling a cell's reply, outputs and kernel liveness behind
        when a timeout or a signal interrupts the cell; left alone they would report the
        kernel we are stopping as dead ("Kernel died while waiting for execute reply") and
        outlive it. A kernel that really died was reported before we get here.
        """
        self.shutdown_kernel = "immediate"
        from jupyter_core.utils import ensure_event_loop

        loop = ensure_event_loop()
        if loop.is_running():
            return
        ours = [task for task in asyncio.all_tasks(loop) if _owner(task) is self]
        for task in ours:
            task.cancel()
        if ours:
            loop.run_until_complete(asyncio.gather(*ours, return_exceptions=True))

    def _stop_kernel(self) -> None:
        """Shut the kernel down when a signal interrupted its start-up or its shutdown."""
        if self.km is None:
            return
        with contextlib.suppress(Exception):
            self._cleanup_kernel()

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


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def plain_lines(traceback: str) -> tuple[str, ...]:
    """A cell's traceback as nbclient joins it, as lines without terminal colours."""
    return tuple(ANSI.sub("", traceback or "").splitlines())


def _cell_name(source: int | None) -> str:
    return "the injected-parameters cell" if source is None else f"cell {source}"


def _owner(task: asyncio.Task[Any]) -> Any:
    """The object whose coroutine method a task runs (nbclient's pollers are methods of the client)."""
    frame = getattr(task.get_coro(), "cr_frame", None)
    return None if frame is None else frame.f_locals.get("self")


class _ExecutionManager(NotebookExecutionManager):  # type: ignore[misc]
    """Papermill's bookkeeping, saving through nbops's archive instead of ``write_ipynb``."""

    def __init__(self, nb: Any, save: Callable[[Any], None] | None, **kwargs: Any) -> None:
        super().__init__(nb, output_path=None, progress_bar=False, **kwargs)
        self._save = save

    def save(self, **kwargs: Any) -> None:
        if kwargs.get("nb") is not None:
            self.nb = kwargs["nb"]
        if self._save is not None:
            self._save(self.nb)
        self.last_save_time = self.now()


class NbopsEngine(NBClientEngine):  # type: ignore[misc]
    """Papermill engine entry point; kwargs flow to :class:`NbopsClient` as traitlets."""

    @classmethod
    def execute_notebook(
        cls,
        nb: Any,
        kernel_name: str,
        output_path: Any = None,
        progress_bar: Any = False,
        log_output: bool = False,
        autosave_cell_every: int = 30,
        **kwargs: Any,
    ) -> Any:
        """Papermill's ``Engine.execute_notebook``, with saves going to ``Hooks.save``."""
        hooks: Hooks = kwargs["nbops_hooks"]
        nb_man = _ExecutionManager(nb, hooks.save, log_output=log_output, autosave_cell_every=autosave_cell_every)
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
        finally:
            nb_man.notebook_complete()
        return nb_man.nb

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        start_timeout = kwargs.pop("start_timeout", 60)
        timeout = kwargs.pop("execution_timeout", None)
        kwargs.pop("input_path", None)
        early: EarlyKernel | None = kwargs.pop("early_kernel", None)
        if early is not None and not early.usable(kernel_name):
            early.shutdown()
            early = None
        sockets = early.sockets if early is not None else tempfile.mkdtemp(prefix="nbops-kernel-")
        client = NbopsClient(
            nb_man,
            km=early.km if early is not None else None,
            kernel_name=kernel_name,
            startup_timeout=start_timeout,
            timeout=timeout,
            log=nb_man_logger(),
            config=_kernel_config(sockets),
            **kwargs,
        )
        try:
            return client.execute()
        finally:
            shutil.rmtree(sockets, ignore_errors=True)


def _kernel_config(sockets: str) -> Config:
    """IPC sockets in a private temp dir: no TCP port is opened for the kernel."""
    return Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}})


class EarlyKernel:
    """A kernel started before its notebook may run, so that its start-up overlaps waiting.

    Started exactly as nbclient starts one (same manager class, IPC sockets, in-memory
    history, working directory), in this thread's event loop, which nbclient reuses; the
    stage's own variables reach it once it is released, with the tracking run
    (``Hooks.kernel_env``). Pass it to :func:`nbops.notebook.execute.execute`, which shuts it
    down like a kernel of its own; :meth:`shutdown` is for one that never ran a notebook.
    """

    def __init__(self, km: Any, sockets: str, kernel_name: str) -> None:
        self.km = km
        self.sockets = sockets
        self.kernel_name = kernel_name

    @classmethod
    def start(cls, kernel_name: str, cwd: str) -> EarlyKernel | None:
        """A started kernel, or None when it would not start: execution then starts one itself
        and reports the failure where it always has, in the attempt's record."""
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        sockets = tempfile.mkdtemp(prefix="nbops-kernel-")
        km = AsyncKernelManager(kernel_name=kernel_name, config=_kernel_config(sockets))
        kernel = cls(km, sockets, kernel_name)
        try:
            run_sync(km.start_kernel)(
                extra_arguments=["--HistoryManager.hist_file=:memory:"], cwd=cwd, env=_kernel_environ()
            )
        except Exception:
            kernel.shutdown()
            return None
        except BaseException:  # a signal while it started: nothing may outlive the stage command
            kernel.shutdown()
            raise
        return kernel

    def usable(self, kernel_name: str) -> bool:
        """Whether this kernel can run a notebook asking for ``kernel_name``."""
        return kernel_name == self.kernel_name and bool(self.km.has_kernel)

    def shutdown(self) -> None:
        """Stop the kernel (if it still runs) and remove its sockets."""
        from jupyter_core.utils import run_sync

        with contextlib.suppress(Exception):
            if self.km.has_kernel:
                run_sync(self.km.shutdown_kernel)(now=True)
        with contextlib.suppress(Exception):
            run_sync(self.km.cleanup_resources)()
        shutil.rmtree(self.sockets, ignore_errors=True)


def nb_man_logger() -> Any:
    """Papermill's logger, so engine messages land where Papermill's do."""
    from papermill.log import logger

    return logger


papermill_engines.register(ENGINE_NAME, NbopsEngine)


def _kernel_environ() -> dict[str, str]:
    """This process's environment without what the notebook's code must not see (the model signing key's path)."""
    return {k: v for k, v in os.environ.items() if k not in WITHHELD}
