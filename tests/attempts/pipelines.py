"""Small pipelines whose attempts the attempt commands look back at."""

from __future__ import annotations

import re
import subprocess

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
