"""Small pipelines whose attempts the attempt commands look back at."""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable

from tests.conftest import Project

UP = [
    ("value = 1", ["parameters"]),
    ("import nbops\n(nbops.output_dir() / 'value.txt').write_text(str(value))\nprint('up wrote', value)", []),
]
DOWN = [
    ("fail = True", ["parameters"]),
    ("import nbops\nfrom helpers import double", []),
    ("seen = (nbops.input_dir('up') / 'value.txt').read_text()\nprint('down read', seen)", []),
    ("(nbops.output_dir() / 'seen.txt').write_text(double(seen))", []),
    ("if fail:\n    raise ValueError(f'refused {seen}')", []),
    ("print('never printed')", []),
]
HELPER = "def double(text):\n    return text + text\n"
SWEPT = [("k = 0", ["parameters"]), ("print('point', k)", [])]


def two_stages(project: Project, name: str = "dbg", swept: bool = False) -> None:
    """``up`` writes its ``value``; ``down`` reads it with a carried helper, writes it twice and fails
    while ``fail`` is true; with ``swept``, a stage ``sweep`` over ``k`` in 1, 2 besides."""
    (project.root / "nb" / "helpers.py").write_text(HELPER)
    stages = {
        "up": {"notebook": project.add_notebook("up", UP)},
        "down": {"notebook": project.add_notebook("down", DOWN), "needs": ["up"]},
    }
    if swept:
        stages["sweep"] = {"notebook": project.add_notebook("sweep", SWEPT), "grid": {"k": [1, 2]}}
    project.write_spec({"name": name, "stages": stages})


def run_id(result: subprocess.CompletedProcess[str]) -> str:
    """The run id ``nbops run`` printed."""
    found = re.search(r"\brun (\d{8}T\d{6}Z-[0-9a-f]{6})", result.stdout + result.stderr)
    assert found is not None, result.stdout + result.stderr
    return found.group(1)


WAITS = [
    ("import time\nfrom pathlib import Path\nprint('early cell')", []),
    ("print('second cell')", []),
    ("while not Path({flag!r}).exists():\n    time.sleep(0.05)\nprint('released')", []),
    ("raise RuntimeError('late failure')", []),
]


def follow_running_stage(project: Project, env: dict[str, str], started: Callable[[], bool]) -> None:
    """Run a stage that waits for a file; once ``started`` says its notebook is in the store, follow
    it: its first cells are printed while it waits, the rest once the file is there, and following
    ends with the stage's exit code (1: its last cell raises)."""
    flag = project.root / "release"
    cells = [(source.replace("{flag!r}", repr(str(flag))), tags) for source, tags in WAITS]
    project.write_spec({"name": "follow", "stages": {"waits": {"notebook": project.add_notebook("waits", cells)}}})
    runner = project.popen("run", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [runner]
    try:
        deadline = time.monotonic() + 120
        while not started():
            assert runner.poll() is None and time.monotonic() < deadline, runner.returncode
            time.sleep(0.1)
        follower = project.popen("logs", "waits", "--follow", env=env)
        procs.append(follower)
        lines = _lines(follower)
        early = _until(lines, "    second cell", 60)
        assert "[0] In [1]: import time" in early and "    early cell" in early
        assert follower.poll() is None and runner.poll() is None and not flag.exists()  # still running
        flag.touch()
        rest = _until(lines, "# cell 3 (In [4]) raised RuntimeError: late failure", 60)
        assert "    released" in rest and "[3] In [4]: raise RuntimeError('late failure')  <-- failed here" in rest
        assert follower.wait(timeout=30) == 1
        assert runner.wait(timeout=60) == 1
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """The lines ``proc`` prints, as they come."""
    found: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            found.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return found


def _until(lines: queue.Queue[str], wanted: str, seconds: float) -> list[str]:
    """The lines up to ``wanted``; queue.Empty when it does not come within ``seconds``."""
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while wanted not in seen:
        seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
    return seen
