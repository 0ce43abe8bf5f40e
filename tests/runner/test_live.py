"""What `nbops run` shows of its running stages: read from their logs, live or as plain lines."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
from rich.console import Console

from nbops.notebook.progress import DONE, RUNNING, STARTED, CellProgress
from nbops.runner import live
from nbops.runner.live import Board, LogTail
from nbops.runner.report import say
from nbops.runner.state import StageRun
from tests.conftest import Project


def _stage(tmp_path: Path, name: str = "train") -> StageRun:
    st = StageRun(name)
    st.log_path = tmp_path / f"{name}-1.log"
    st.log_path.write_bytes(b"")
    st.started = time.monotonic()
    return st


def _log(st: StageRun, *lines: str, end: str = "\n") -> None:
    assert st.log_path is not None
    with st.log_path.open("a", encoding="utf-8") as log:
        log.write("\n".join(lines) + end)


@pytest.mark.unit
def test_the_tail_returns_each_complete_line_once(tmp_path: Path) -> None:
    path = tmp_path / "log"
    tail = LogTail(path)
    assert tail.lines() == []  # not there yet
    path.write_bytes(b"one\ntw")
    assert tail.lines() == ["one"]
    with path.open("ab") as log:
        log.write("o\nthree \u2713\n".encode())
    assert tail.lines() == ["two", "three \u2713"]
    assert tail.lines() == []


@pytest.mark.unit
def test_plain_mode_prints_a_line_per_cell_started_or_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "READ_EVERY_S", 0.0)
    said: list[tuple[str, str]] = []
    board = Board("plain", lambda stage, text: said.append((stage, text)))
    st = _stage(tmp_path)
    _log(st, "nbops: stage 's' of run r: attempt 1", CellProgress(STARTED, 1, 3).render(), "loading")
    board.watch(st)
    _log(st, CellProgress(RUNNING, 1, 3, 0.5, "loading").render())  # soon after the start: not shown
    _log(st, CellProgress(DONE, 1, 3, 1.0, "loading").render(), CellProgress(STARTED, 2, 3).render())
    _log(st, "half a line", end="")
    board.watch(st)
    _log(st, "", CellProgress(DONE, 2, 3, 0.2).render())
    board.end(st)  # the command exited: the rest of its log is read
    board.watch(st)  # forgotten, then watched anew: from the start of its log again
    assert said[:4] == [
        ("train", "cell 1/3 started"),
        ("train", "cell 1/3 done in 1.0s | loading"),
        ("train", "cell 2/3 started"),
        ("train", "cell 2/3 done in 0.2s"),
    ]


@pytest.mark.unit
def test_off_mode_reads_nothing(tmp_path: Path) -> None:
    said: list[tuple[str, str]] = []
    board = Board("off", lambda stage, text: said.append((stage, text)))
    st = _stage(tmp_path)
    _log(st, CellProgress(STARTED, 1, 1).render())
    board.watch(st)
    board.end(st)
    assert said == []


@pytest.mark.unit
def test_the_live_region_shows_each_running_stage_below_the_event_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "READ_EVERY_S", 0.0)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    board = Board("auto", lambda stage, text: pytest.fail("plain lines in live mode"), console=console)
    assert board.mode == "live"  # auto: the console is a terminal
    train, score = _stage(tmp_path, "train"), _stage(tmp_path, "score")
    _log(train, CellProgress(STARTED, 7, 12).render(), CellProgress(RUNNING, 7, 12, 2.0, "epoch 3 loss=0.25").render())
    _log(score, "nbops: stage 'score' of run r: attempt 1")
    board.start()
    try:
        board.watch(train)
        board.watch(score)
        say("[   1.0s] start score  running")  # the runner's event lines go above the region
        time.sleep(2 / live.REFRESH_PER_SECOND)
    finally:
        board.stop()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert "[   1.0s] start score  running" in text
    assert re.search(r"train\s+\d+\.\ds\s+cell 7/12\s+\d+\.\ds\s+epoch 3 loss=0\.25", text)
    assert re.search(r"score\s+\d+\.\ds\s+starting", text)
    assert text.index("start score") < text.rindex("cell 7/12")  # the region is redrawn below it


@pytest.mark.unit
def test_auto_is_plain_off_a_terminal() -> None:
    console = Console(file=io.StringIO(), force_terminal=False)
    assert Board("auto", lambda stage, text: None, console=console).mode == "plain"


@pytest.mark.integration
def test_nbops_run_plain_prints_the_cells_of_each_stage(project: Project) -> None:
    cells = [("print('one')", []), ("print('two')\nprint('loss=0.25')", []), ("3 * 14", [])]
    project.write_spec({"name": "cells", "stages": {"s": {"notebook": project.add_notebook("s", cells)}}})
    ran = project.nbops("run", "pipeline.yaml", "--progress", "plain")
    assert ran.returncode == 0, ran.stderr
    lines = [line for line in ran.stderr.splitlines() if " cell " in line]
    assert [re.sub(r"^\[\s*\d+\.\ds\]\s+", "", line) for line in lines] == [
        "s  cell 1/3 started",
        f"s  cell 1/3 done in {_seconds(lines[1])}s | one",
        "s  cell 2/3 started",
        f"s  cell 2/3 done in {_seconds(lines[3])}s | loss=0.25",
        "s  cell 3/3 started",
        f"s  cell 3/3 done in {_seconds(lines[5])}s | 42",
    ]
    assert ran.stderr.index("cell 3/3 done") < ran.stderr.index("ok    s")
    quiet = project.nbops("run", "pipeline.yaml", "--progress", "off", "--force")
    assert quiet.returncode == 0 and " cell " not in quiet.stderr


def _seconds(line: str) -> str:
    match = re.search(r"done in (\d+\.\d)s", line)
    return match[1] if match else "?"
