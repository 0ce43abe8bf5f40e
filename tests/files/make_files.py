"""Regenerates the failure-mode notebooks in this folder (run by hand; outputs are committed).

.venv/bin/python tests/files/make_files.py [NAME ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import nbjson

HERE = Path(__file__).parent
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
PARAMS = ("limit: int = 3  # how many\nlabel = 'x'  # a label", ["parameters"])

CASES: dict[str, list[tuple[str, list[str]]]] = {
    "cell_raises": [PARAMS, ("print('before')", []), ("raise ValueError('bad value in cell 2')", []), ("x = 1", [])],
    "kernel_dies": [PARAMS, ("print('before')", []), ("import os\nos._exit(9)", []), ("x = 1", [])],
    "cell_timeout": [PARAMS, ("print('before')", []), ("import time\ntime.sleep(60)", []), ("x = 1", [])],
    # What the OOM killer does to a kernel over its memory limit: SIGKILL.
    "kernel_sigkill": [
        PARAMS,
        ("print('before')", []),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", []),
        ("x = 1", []),
    ],
    # Memory exhaustion the kernel survives: the allocation fails inside the cell.
    "memory_exhausted": [
        PARAMS,
        ("print('before')", []),
        ("import resource\nresource.setrlimit(resource.RLIMIT_AS, (2**31, 2**31))\nblob = bytearray(2**32)", []),
        ("x = 1", []),
    ],
    "sys_exit_one": [PARAMS, ("print('before')", []), ("import sys\nsys.exit(1)", []), ("x = 1", [])],
    "magic_raises": [PARAMS, ("print('before')", []), ("%time 1 / 0", []), ("x = 1", [])],
    "sys_exit_zero": [PARAMS, ("import sys\nsys.exit(0)", []), ("raise RuntimeError('never runs')", [])],
    "raises_allowed": [PARAMS, ("1 / 0", ["raises-exception"]), ("ok = 1", ["metrics"])],
    "params": [PARAMS, ("assert isinstance(limit, int)\nprint(label)", [])],
}


# Notebooks whose metadata or cell kinds are the point: name -> (kernelspec, cells), each cell
# (kind, source, tags). Written only when asked for by name or when missing, so regenerating
# one never rewrites the others' cell ids.
ERROR_MARKER = (
    '<span style="color:red; font-family:Helvetica Neue, Helvetica, Arial, sans-serif; font-size:2em;">'
    "An Exception was encountered at '<a href=\"#papermill-error-cell\">In [3]</a>'.</span>"
)
SHAPED: dict[str, tuple[dict[str, str], list[tuple[str, str, list[str]]]]] = {
    # nbclient's Output.ipynb has such a kernelspec: a language, no name or display name.
    "kernelspec_language_only": (
        {"language": "python"},
        [("code", PARAMS[0], PARAMS[1]), ("code", "import sys\nprint(sys.version_info.major)", [])],
    ),
    # An R notebook: the kernelspec names the IRkernel and says nothing else.
    "kernelspec_other_language": (
        {"name": "ir", "display_name": "R"},
        [("code", "x <- c(1, 2, 3)\nprint(mean(x))", [])],
    ),
    "cell_never_ends": (
        KERNELSPEC,
        [
            ("code", PARAMS[0], PARAMS[1]),
            ("code", "print('before')", []),
            ("code", "import time\nwhile True:\n    time.sleep(1)", []),
            ("code", "x = 1", []),
        ],
    ),
    # Source cell 6 fails. Papermill removes the old error marker (cell 4) before running
    # and injects a cell after the parameters cell, so only the source index is stable.
    "markdown_and_error_markers": (
        KERNELSPEC,
        [
            ("markdown", "# A report\nIt failed last time.", []),
            ("code", PARAMS[0], PARAMS[1]),
            ("markdown", "## Load", []),
            ("code", "print(limit)", []),
            ("markdown", ERROR_MARKER, ["papermill-error-cell-tag"]),
            ("markdown", "## Check", []),
            ("code", "raise ValueError('source cell 6 fails')", []),
            ("code", "x = 1", []),
        ],
    ),
    # The shapes of nbclient's update-display-id.ipynb and of a progress display: a display updated
    # in place by its id, and output cleared and printed again (clear_output(wait=True)).
    "display_updates": (
        KERNELSPEC,
        [
            ("code", PARAMS[0], PARAMS[1]),
            (
                "code",
                "from IPython.display import clear_output, display\nshown = display('step 0', display_id=True)\n"
                "for i in range(1, 4):\n    shown.update(f'step {i}')",
                [],
            ),
            ("code", "for epoch in range(3):\n    clear_output(wait=True)\n    print(f'epoch {epoch}')", []),
        ],
    ),
    # About 4 MB on stdout in one cell.
    "prints_megabytes": (
        KERNELSPEC,
        [
            ("code", PARAMS[0], PARAMS[1]),
            ("code", "print(('0123456789' * 10 + '\\n') * 40_000)", []),
            ("code", "done = 1", ["metrics"]),
        ],
    ),
}


def write_case(name: str, cells: list[tuple[str, list[str]]]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = KERNELSPEC
    for source, tags in cells:
        cell = nbformat.v4.new_code_cell(source)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.write(nb, HERE / f"{name}.ipynb")


def write_shaped(name: str, kernelspec: dict[str, str], cells: list[tuple[str, str, list[str]]]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = kernelspec
    for kind, source, tags in cells:
        cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    # nbformat's JSON writer without its validation, which would refuse the incomplete kernelspec.
    (HERE / f"{name}.ipynb").write_text(nbjson.writes(nb) + "\n")


def main(names: list[str]) -> None:
    """Write the named notebooks (all when none is named, else also any that are missing)."""
    for name, cells in CASES.items():
        if not names or name in names:
            write_case(name, cells)
    for name, (kernelspec, shaped) in SHAPED.items():
        if not names or name in names or not (HERE / f"{name}.ipynb").exists():
            write_shaped(name, kernelspec, shaped)
    if not names or "malformed" in names:
        (HERE / "malformed.ipynb").write_text('{"cells": [ {"cell_type": "code", "source": "x = 1"\n')


if __name__ == "__main__":
    main(sys.argv[1:])
