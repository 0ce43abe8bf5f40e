"""Cell progress: the engine's events, their log lines and the stage's throttled printer."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from nbops.notebook import progress
from nbops.notebook.execute import execute, parameterize
from nbops.notebook.progress import DONE, RUNNING, STARTED, CellProgress, LinePrinter, last_line, parse
from nbops.status import StageStatus
from tests.conftest import FILES, notebook

SECRET = "s3cr3t-Value-4242"


@pytest.mark.unit
@pytest.mark.parametrize(
    "event",
    [
        CellProgress(STARTED, 7, 12),
        CellProgress(RUNNING, 7, 12, 12.3, "epoch 3 | loss=0.25"),
        CellProgress(DONE, 12, 12, 1.4, "done"),
        CellProgress(DONE, 1, 3, 0.0),
    ],
)
def test_a_log_line_reads_back_as_its_event(event: CellProgress) -> None:
    line = event.render()
    assert line.startswith(f"nbops: cell {event.position}/{event.total} ")
    assert parse(line + "\n") == event


@pytest.mark.unit
def test_log_lines_are_found_after_unterminated_output_and_nothing_else_is() -> None:
    assert parse("50%nbops: cell 2/3 done in 1.0s | 50%") == CellProgress(DONE, 2, 3, 1.0, "50%")
    assert parse("nbops: cell 2/3 done in 1.0s") == CellProgress(DONE, 2, 3, 1.0)
    for other in ("nbops: stage 'a' of run r: attempt 1", "cell 2/3 started", "nbops: cell 2/3 finished", ""):
        assert parse(other) is None


@pytest.mark.unit
def test_the_last_line_is_the_latest_non_empty_one() -> None:
    stream = nbformat.v4.new_output("stream", name="stdout", text="a\nb\n\n")
    assert last_line(stream) == "b"
    bar = nbformat.v4.new_output("stream", name="stderr", text=" 10%|#\r 60%|######\r")
    assert last_line(bar) == "60%|######"
    coloured = nbformat.v4.new_output("stream", name="stdout", text="\x1b[31mred\x1b[0m\n")
    assert last_line(coloured) == "red"
    result = nbformat.v4.new_output("execute_result", data={"text/plain": "  42  "}, execution_count=1)
    assert last_line(result) == "42"
    assert last_line(nbformat.v4.new_output("error", ename="E", evalue="v", traceback=[])) == ""


@pytest.mark.unit
def test_the_printer_shows_a_running_cell_s_first_line_at_once_then_at_most_every_few_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    printer = LinePrinter(out, every=2.0)
    printer(CellProgress(STARTED, 1, 2))
    for second, line in ((0.1, "a"), (0.5, "b"), (1.0, "c"), (2.2, "a"), (2.3, "d")):
        now[0] = 100.0 + second
        printer(CellProgress(RUNNING, 1, 2, second, line))
    printer(CellProgress(DONE, 1, 2, 2.5, "d"))
    printer(CellProgress(STARTED, 2, 2))
    printer(CellProgress(RUNNING, 2, 2, 0.0, "e"))  # a new cell: at once again
    assert out.getvalue().splitlines() == [
        "nbops: cell 1/2 started",
        "nbops: cell 1/2 running 0.1s | a",
        "nbops: cell 1/2 running 2.3s | d",  # "a" again at 2.2 s: what was shown, not shown again
        "nbops: cell 1/2 done in 2.5s | d",
        "nbops: cell 2/2 started",
        "nbops: cell 2/2 running 0.0s | e",
    ]


def _cells() -> nbformat.NotebookNode:
    nb = notebook(
        [
            ("n = 1", ["parameters"]),
            ("raise RuntimeError('exploration only')", ["skip"]),
            ("import os\nprint('one')\nprint('token', os.environ['WAREHOUSE_TOKEN'])", []),
            ("n * 21", []),
        ]
    )
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("# notes"))
    return nb


@pytest.mark.integration
def test_the_engine_reports_each_cell_that_runs_with_secrets_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Source cells: 0 parameters, 1 markdown, 2 skipped, 3 prints, 4 a result; with the
    injected cell four code cells run, numbered 1 to 4 whatever their source index."""
    monkeypatch.setenv("WAREHOUSE_TOKEN", SECRET)
    events: list[CellProgress] = []
    _, outcome = executed(tmp_path, parameterize(_cells(), {"n": 2}, "nb"), progress=events.append)
    assert outcome.status is StageStatus.SUCCEEDED
    starts = [(e.position, e.total, e.source) for e in events if e.kind == STARTED]
    assert starts == [(1, 4, 0), (2, 4, None), (3, 4, 3), (4, 4, 4)]  # the injected cell follows the parameters
    done = {e.source: e for e in events if e.kind == DONE}
    assert done[3].line == "token ***" and done[4].line == "42" and done[0].line == ""
    running = [e.line for e in events if e.kind == RUNNING]  # the kernel may send both prints as one output
    assert running[-2:] == ["token ***", "42"] and set(running) <= {"one", "token ***", "42"}
    assert all(SECRET not in e.line for e in events)
    kinds = [e.kind for e in events if e.position == 3]
    assert kinds[0] == STARTED and kinds[-1] == DONE and set(kinds[1:-1]) == {RUNNING}
    assert all(e.elapsed >= 0 for e in events)


@pytest.mark.integration
def test_a_failing_cell_is_reported_done_and_nothing_after_it(tmp_path: Path) -> None:
    events: list[CellProgress] = []
    _, outcome = execute(
        parameterize(notebook([("print('before')", []), ("raise ValueError('no')", []), ("print('x')", [])]), {}, "nb"),
        input_path=tmp_path / "in.ipynb",
        output_path=tmp_path / "out.ipynb",
        cwd=tmp_path,
        cell_timeout=None,
        kernel_env=dict,
        progress=events.append,
    )
    assert outcome.status is StageStatus.FAILED
    assert [(e.kind, e.position) for e in events if e.kind != RUNNING] == [
        (STARTED, 1),
        (DONE, 1),
        (STARTED, 2),
        (DONE, 2),
    ]


def executed(tmp_path: Path, nb: nbformat.NotebookNode, **hooks: Any) -> tuple[Any, Any]:
    """Execute the parameterized ``nb`` into ``tmp_path / 'out.ipynb'`` with ``hooks`` (progress, checkpoint)."""
    return execute(
        nb,
        input_path=tmp_path / "in.ipynb",
        output_path=tmp_path / "out.ipynb",
        cwd=tmp_path,
        cell_timeout=None,
        kernel_env=dict,
        **hooks,
    )


@pytest.mark.integration
@pytest.mark.parametrize(("every", "expected"), [("0", "every save"), (None, "first save only")])
def test_checkpoints_follow_saves_at_most_as_often_as_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every: str | None, expected: str
) -> None:
    """Papermill saves at the start and at each cell's start and end: with an interval of 0
    every save is checkpointed; with the default (5 s) a notebook of a fraction of a second
    is checkpointed once, at its first save (its final notebook is the attempt upload's)."""
    if every is None:
        monkeypatch.delenv("NBOPS_CHECKPOINT_SECONDS", raising=False)
    else:
        monkeypatch.setenv("NBOPS_CHECKPOINT_SECONDS", every)
    output = tmp_path / "out.ipynb"
    seen: list[int] = []

    def checkpoint() -> None:  # the file is written before each checkpoint
        seen.append(len(nbformat.read(output, as_version=4).cells))

    executed(tmp_path, parameterize(notebook([("a = 1", []), ("b = 2", [])]), {}, "nb"), checkpoint=checkpoint)
    if expected == "every save":
        assert len(seen) >= 5  # notebook start, then a start and an end per cell
    else:
        assert len(seen) == 1
    assert set(seen) == {2}


@pytest.mark.integration
def test_a_save_that_came_too_soon_is_checkpointed_while_a_silent_cell_runs_and_never_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBOPS_CHECKPOINT_SECONDS", "1")
    output = tmp_path / "out.ipynb"
    seen: list[list[str]] = []

    def checkpoint() -> None:
        cells = nbformat.read(output, as_version=4).cells
        seen.append([c.metadata.get("papermill", {}).get("status", "") for c in cells])

    executed(
        tmp_path,
        parameterize(notebook([("print('a')", []), ("import time\ntime.sleep(3)", [])]), {}, "nb"),
        checkpoint=checkpoint,
    )
    # The first cell's end and the second's start came within a second of the first checkpoint:
    # the timer copied them while the second cell slept.
    assert ["completed", "running"] in seen
    count = len(seen)
    time.sleep(1.5)
    assert len(seen) == count  # closed with the run: nothing lands after the final save


@pytest.mark.unit
@pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), ("2.5", 2.5), ("-1", 5.0), ("soon", 5.0), ("", 5.0)])
def test_the_checkpoint_interval_falls_back_to_the_default(value: str, seconds: float) -> None:
    from nbops.notebook.execute import checkpoint_seconds

    assert checkpoint_seconds({"NBOPS_CHECKPOINT_SECONDS": value}) == seconds


@pytest.mark.integration
def test_displays_updated_in_place_and_cleared_output_show_their_latest_line(tmp_path: Path) -> None:
    """The shapes of nbclient's update-display-id.ipynb and of a progress display (clear_output):
    the progress names the latest value, and the archived notebook, read by nbops logs, keeps it alone."""
    from nbops.attempts.text import NotebookText

    events: list[CellProgress] = []
    source = nbformat.read(FILES / "display_updates.ipynb", as_version=4)
    ran, _ = executed(tmp_path, parameterize(source, {}, "display_updates.ipynb"), progress=events.append)
    done = {e.source: e.line for e in events if e.kind == DONE}
    assert done == {0: "", 1: "'step 3'", 2: "epoch 2"}
    text = NotebookText(ran).render()
    assert "'step 3'" in text and "'step 0'" not in text
    assert "epoch 2" in text and "epoch 1" not in text
