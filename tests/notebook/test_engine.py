from __future__ import annotations

import asyncio
import gc
import logging
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from nbops.notebook.outcome import Outcome, StageTimedOut, Terminated
from nbops.status import StageStatus
from tests.notebook.conftest import Run, kernels

Raise = Callable[[float, BaseException], None]


@pytest.mark.unit
def test_stops_carry_their_status_and_pickle() -> None:
    for exc, status, ename, evalue in [
        (Terminated(), StageStatus.KILLED, "Terminated", "SIGTERM"),
        (Terminated("SIGINT"), StageStatus.KILLED, "Terminated", "SIGINT"),
        (StageTimedOut(90.0), StageStatus.STAGE_TIMED_OUT, "StageTimeout", "the stage timeout of 90 s ran out"),
    ]:
        again = pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes, as a process pool would send them
        assert type(again) is type(exc) and isinstance(again, KeyboardInterrupt)
        assert (again.status, again.ename, again.evalue, str(again)) == (status, ename, evalue, evalue)
        assert again.limit == exc.limit
    assert StageTimedOut(90.0).limit == 90.0 and Terminated().limit is None


@pytest.mark.unit
def test_outcome_names_the_cell_by_source_index_and_execution_count() -> None:
    outcome = Outcome(StageStatus.FAILED, cell_index=3, execution_count=4, ename="ValueError", evalue="bad")
    assert outcome.cell == "cell 3 (In [4])"
    assert outcome.message == "cell 3 (In [4]) raised ValueError: bad"
    outcome.stopped_by(Terminated())  # a failure is not overwritten by a later signal
    assert outcome.status is StageStatus.FAILED
    fresh = Outcome()
    fresh.stopped_by(StageTimedOut(5), 2, 3)
    assert (fresh.status, fresh.cell_index, fresh.limit) == (StageStatus.STAGE_TIMED_OUT, 2, 5)
    assert "stage timeout of 5" in fresh.message


def error_outputs(cell: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in cell["outputs"] if o["output_type"] == "error"]


def assert_quiet(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    gc.collect()  # "Task exception was never retrieved" is logged when such a task is collected
    logged = caplog.text + capfd.readouterr().err
    assert "Kernel died" not in logged
    assert "never retrieved" not in logged
    assert "destroyed but it is pending" not in logged


pytestmark = pytest.mark.integration


def test_cell_timeout_names_the_limit(run_notebook: Run) -> None:
    done = run_notebook("cell_never_ends", cell_timeout=2)
    outcome = done.outcome
    assert (outcome.status, outcome.cell_index, outcome.limit) == (StageStatus.CELL_TIMED_OUT, 2, 2.0)
    assert outcome.ename == "CellTimeoutError" and outcome.execution_count == 3
    (error,) = error_outputs(done.archived["cells"][2])  # no parameters: no injected cell
    assert error["evalue"] == "cell 2 ran longer than the 2 s cell timeout"
    assert not kernels()


@pytest.mark.parametrize(
    ("stop", "status", "ename", "evalue", "mark"),
    [
        (
            StageTimedOut(2.5),
            StageStatus.STAGE_TIMED_OUT,
            "StageTimeout",
            "the stage timeout of 2.5 s ran out",
            "the stage timeout of 2.5 s ran out while cell 2 ran",
        ),
        (
            Terminated("SIGINT"),
            StageStatus.KILLED,
            "Terminated",
            "SIGINT",
            "the stage was terminated (SIGINT) while cell 2 ran",
        ),
    ],
)
def test_a_stop_marks_the_running_cell_quietly(
    run_notebook: Run,
    raise_after: Raise,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    stop: Terminated,
    status: StageStatus,
    ename: str,
    evalue: str,
    mark: str,
) -> None:
    raise_after(2.5, stop)
    done = run_notebook("cell_never_ends", params={"limit": 4})
    outcome = done.outcome
    assert (outcome.status, outcome.cell_index, outcome.execution_count) == (status, 2, 4)
    assert (outcome.ename, outcome.evalue, outcome.limit) == (ename, evalue, stop.limit)
    (error,) = error_outputs(done.archived["cells"][3])  # after the injected cell
    assert (error["ename"], error["evalue"]) == (ename, mark)
    assert done.archived["metadata"]["nbops"]["status"] == status.value
    assert not kernels()
    assert_quiet(caplog, capfd)


def test_a_stop_before_any_cell_leaves_no_kernel(
    run_notebook: Run, raise_after: Raise, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    raise_after(0.05, Terminated())
    done = run_notebook("cell_never_ends")
    assert (done.outcome.status, done.outcome.cell_index) == (StageStatus.KILLED, None)
    assert done.archived["metadata"]["nbops"]["status"] == "killed"
    assert not kernels()
    assert_quiet(caplog, capfd)


def test_no_kernel_died_noise_when_the_stopped_kernel_is_slow_to_go(
    run_notebook: Run,
    raise_after: Raise,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """nbclient's pollers of an interrupted cell outlive it; while the loop still runs after
    the kernel is gone (a big kernel is slow to reap) they used to report it as dead."""
    from jupyter_client.manager import AsyncKernelManager

    shutdown = AsyncKernelManager.shutdown_kernel

    async def slow_shutdown(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = await shutdown(self, *args, **kwargs)
        await asyncio.sleep(1.5)
        return result

    monkeypatch.setattr(AsyncKernelManager, "shutdown_kernel", slow_shutdown)
    raise_after(2.0, Terminated())
    done = run_notebook("cell_never_ends")
    assert done.outcome.status is StageStatus.KILLED
    assert_quiet(caplog, capfd)


def test_a_kernel_that_really_dies_is_still_reported(run_notebook: Run, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    done = run_notebook("kernel_sigkill")
    assert (done.outcome.status, done.outcome.cell_index) == (StageStatus.KERNEL_DIED, 2)
    assert done.outcome.execution_count in (None, 3)  # None when the kernel died before announcing the cell
    assert "Kernel died" in caplog.text
    assert not kernels()


@pytest.mark.integration
def test_an_early_kernel_runs_the_notebook_and_gets_the_stage_variables_late(tmp_path: Path) -> None:
    """Started before the stage is released (boot), in the notebook's directory; the variables
    set afterwards reach it with the tracking run before the first cell; it is gone at the end."""
    from nbops.notebook.engine import EarlyKernel
    from nbops.notebook.execute import execute, parameterize
    from tests.conftest import notebook

    early = EarlyKernel.start("python3", str(tmp_path))
    assert early is not None and early.usable("python3") and not early.usable("ir")
    pid = early.km.provisioner.pid
    nb = parameterize(notebook([("import os\nprint(os.getcwd(), os.environ['LATE'], os.getpid())", [])]), {}, "nb")
    executed, outcome = execute(
        nb, input_path=tmp_path / "in.ipynb", output_path=tmp_path / "out.ipynb", cwd=tmp_path,
        cell_timeout=None, kernel_env=lambda: {"LATE": "set-after-start"}, early_kernel=early,
    )  # fmt: skip
    assert outcome.status is StageStatus.SUCCEEDED
    assert executed.cells[0].outputs[0]["text"].split() == [str(tmp_path), "set-after-start", str(pid)]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not Path(early.sockets).exists()


@pytest.mark.unit
def test_an_early_kernel_that_will_not_start_is_left_to_execution(tmp_path: Path) -> None:
    from nbops.notebook.engine import EarlyKernel

    assert EarlyKernel.start("no-such-kernel", str(tmp_path)) is None  # execute() reports it in the record


@pytest.mark.integration
def test_an_unused_early_kernel_is_shut_down(tmp_path: Path) -> None:
    from nbops.notebook.engine import EarlyKernel

    early = EarlyKernel.start("python3", str(tmp_path))
    assert early is not None
    pid = early.km.provisioner.pid
    early.shutdown()
    early.shutdown()  # twice is harmless
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not Path(early.sockets).exists()
