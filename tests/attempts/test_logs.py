"""nbops logs: a real run's attempt printed, followed while it runs, and the ways it refuses or gives up."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from nbops.attempts.find import AttemptRef
from nbops.attempts.logs import follow_attempt
from nbops.storage.local import LocalStore
from tests.attempts.conftest import Runs
from tests.attempts.pipelines import follow_running_stage
from tests.conftest import Project


@pytest.mark.integration
def test_logs_of_a_failed_stage_mark_the_failing_cell(runs: Runs) -> None:
    result = runs.project.nbops("logs", "down", "--run", runs.failed)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"# stage 'down' attempt 1 of run {runs.failed}: ")
    assert "[2] In [3]: seen = (nbops.input_dir('up') / 'value.txt').read_text()" in lines
    assert "    down read 1" in lines
    failed = lines.index("[4] In [5]: if fail:  <-- failed here")
    assert lines[failed + 1] == "    ValueError: refused 1"
    assert "[5] not run: print('never printed')" in lines
    assert lines[-1] == "# cell 4 (In [5]) raised ValueError: refused 1"
    # The newest run by default: 'later-run' ran 'up' alone, with its injected value.
    newest = runs.project.nbops("logs", "up")
    assert newest.returncode == 0, newest.stderr
    assert "run later-run" in newest.stdout.splitlines()[0]
    assert "[injected parameters] In [2]: value = 2" in newest.stdout
    assert "    up wrote 2" in newest.stdout
    # A reuse ran no notebook: the attempt it reused is shown.
    cached = runs.project.nbops("logs", "up", "--run", "cache-run")
    assert cached.returncode == 0, cached.stderr
    assert f"# cached: it reused stage 'up' attempt 1 of run {runs.failed}, shown here" in cached.stdout
    assert "    up wrote 1" in cached.stdout and cached.stdout.endswith("# succeeded\n")


@pytest.mark.integration
def test_logs_name_points_and_refuse_unknown_names(runs: Runs) -> None:
    project = runs.project
    point = project.nbops("logs", "sweep", "--run", runs.failed, "--point", "1")
    assert point.returncode == 0, point.stderr
    assert "    point 2" in point.stdout
    for args, expected in (
        (("down", "--run", "no-such-run"), "run 'no-such-run': no such run of pipeline 'dbg'"),
        (("downstream", "--run", runs.failed), "there is no stage 'downstream'"),
        (("sweep", "--run", runs.failed), "stage 'sweep' is swept over 2 points"),
        (("sweep", "--run", runs.failed, "--point", "5"), "--point 5 is out of range"),
        (("up", "--point", "0"), "stage 'up' is not swept"),
        (("down", "--run", runs.failed, "--attempt", "4"), "has no attempt 4"),
    ):
        result = project.nbops("logs", *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert expected in result.stderr, (args, result.stderr)
    swept = project.nbops("logs", "sweep", "--run", runs.failed)
    assert "0: sweep[0] k=1; 1: sweep[1] k=2" in swept.stderr


@pytest.mark.integration
def test_follow_prints_cells_as_they_finish_and_exits_with_the_stage_s_code(project: Project) -> None:
    def started() -> bool:
        return bool(list(project.root.glob(".nbops/artifacts/runs/follow/*/waits/attempt-1/output.ipynb")))

    follow_running_stage(project, {}, started)


def _attempt(tmp_path: Path, number: int = 1) -> AttemptRef:
    store = LocalStore(tmp_path / "store")
    ref = AttemptRef(store, "p", "run-1", "s", number)
    (tmp_path / "store" / ref.rel).mkdir(parents=True)
    return ref


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.unit
def test_follow_gives_up_on_a_silent_attempt(tmp_path: Path) -> None:
    ref = _attempt(tmp_path)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nb.cells[0].metadata["papermill"] = {"status": "running"}
    nbformat.write(nb, tmp_path / "store" / ref.rel / "output.ipynb")
    clock, printed = Clock(), []
    followed = follow_attempt(ref, printed.append, timeout=10, clock=clock, sleep=clock.sleep)
    assert followed.exit_code == 3 and "has not changed for 11 s" in followed.problem
    assert 10 < clock.now <= 12 and printed == [f"# {ref.describe()}: {ref.location}\n"]


@pytest.mark.unit
def test_follow_stops_when_a_newer_attempt_starts(tmp_path: Path) -> None:
    ref = _attempt(tmp_path)
    clock = Clock()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now >= 3:
            (tmp_path / "store" / ref.rel).with_name("attempt-2").mkdir(exist_ok=True)

    followed = follow_attempt(ref, lambda text: None, timeout=100, clock=clock, sleep=sleep)
    assert followed.exit_code == 3 and "attempt 2 has started" in followed.problem and "--attempt 2" in followed.problem
