"""Regenerates the failure-mode notebooks in this folder (run by hand; outputs are committed)."""

from __future__ import annotations

from pathlib import Path

import nbformat

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


def main() -> None:
    for name, cells in CASES.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = KERNELSPEC
        for source, tags in cells:
            cell = nbformat.v4.new_code_cell(source)
            if tags:
                cell.metadata["tags"] = tags
            nb.cells.append(cell)
        nbformat.write(nb, HERE / f"{name}.ipynb")
    (HERE / "malformed.ipynb").write_text('{"cells": [ {"cell_type": "code", "source": "x = 1"\n')


if __name__ == "__main__":
    main()
