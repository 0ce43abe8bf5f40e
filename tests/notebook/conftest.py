"""Runs notebooks through :func:`nbops.notebook.execute.execute` in this process."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest

from nbops.notebook.execute import execute, parameterize
from nbops.notebook.outcome import Outcome
from nbops.notebook.reader import parse_notebook
from tests.conftest import FILES


@dataclass
class Executed:
    """What one execution left: the notebook returned, the outcome, the archived file."""

    notebook: nbformat.NotebookNode
    outcome: Outcome
    archive: Path

    @property
    def archived(self) -> dict[str, Any]:
        return json.loads(self.archive.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


Run = Callable[..., Executed]


@pytest.fixture
def run_notebook(tmp_path: Path) -> Run:
    """Execute a notebook of ``tests/files`` (by name) or one given, as the stage command does."""

    def run(
        nb: str | nbformat.NotebookNode,
        params: dict[str, Any] | None = None,
        cell_timeout: int | None = None,
        kernel_env: Callable[[], dict[str, str]] = dict,
    ) -> Executed:
        if isinstance(nb, str):
            path = FILES / f"{nb}.ipynb"
            node = parse_notebook(path.read_bytes(), path).node
        else:
            path, node = tmp_path / "source.ipynb", nb
            nbformat.write(node, path)
        prepared = parameterize(node, params or {}, str(path))
        archive = tmp_path / f"output-{len(list(tmp_path.glob('output-*')))}.ipynb"
        executed, outcome = execute(
            prepared,
            input_path=path,
            output_path=archive,
            cwd=tmp_path,
            cell_timeout=cell_timeout,
            kernel_env=kernel_env,
        )
        return Executed(executed, outcome, archive)

    return run


@pytest.fixture
def raise_after() -> Iterator[Callable[[float, BaseException], None]]:
    """Raise an exception in the main thread after some seconds, as the stage command's
    signal handlers do (through SIGUSR1: pytest-timeout owns SIGALRM)."""
    pending: list[BaseException] = []
    timers: list[threading.Timer] = []

    def handler(signum: int, frame: object) -> None:
        if pending:
            raise pending.pop()

    previous = signal.signal(signal.SIGUSR1, handler)

    def schedule(seconds: float, exc: BaseException) -> None:
        pending.append(exc)
        timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGUSR1))
        timers.append(timer)
        timer.start()

    yield schedule
    for timer in timers:
        timer.cancel()
    signal.signal(signal.SIGUSR1, previous)


def kernels() -> list[psutil.Process]:
    """Kernel processes this test process started and that still run."""
    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "ipykernel" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
        except psutil.NoSuchProcess:
            continue
    return alive
