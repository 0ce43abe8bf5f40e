"""Archiving cost of large outputs: a stage printing 4 x 5 MB against the bare Papermill CLI.

    .venv/bin/python benchmarks/big_output.py [--repeats 3] [--cells 4] [--megabytes 5]

Runs ``nbops exec-stage`` (one-stage pipeline in a temporary directory) and ``papermill``
on the same notebook, interleaved in the same run, and prints the median wall time of each
and their ratio (target: nbops <= 2x papermill). Every save of the executed notebook is
masked for secrets and written; before archiving became incremental this cost 29.5 s
against papermill's 3.3 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import nbformat
from common import one_stage


def write_notebook(path: Path, cells: int, megabytes: float) -> None:
    lines = int(megabytes * 1_000_000 / 101)  # 100 digits and a newline per line
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell("n = 1", metadata={"tags": ["parameters"]}))
    for i in range(cells):
        nb.cells.append(nbformat.v4.new_code_cell(f"print(('{i}' * 100 + '\\n') * {lines})"))
    nbformat.write(nb, path)


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each command")
    parser.add_argument("--cells", type=int, default=4, help="cells printing --megabytes each")
    parser.add_argument("--megabytes", type=float, default=5.0, help="output of each cell, in MB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nbops-bench-") as tmp:
        work = Path(tmp)
        write_notebook(work / "big.ipynb", args.cells, args.megabytes)
        nbops, papermill = one_stage(work, "big.ipynb", "big")
        timed([*nbops, "warmup"], work)  # creates the MLflow schema once, as any first run does
        timed(papermill, work)
        nb_times, pm_times = [], []
        for i in range(args.repeats):
            nb_times.append(timed([*nbops, f"r{i}"], work))
            pm_times.append(timed(papermill, work))
        size = (work / "out.ipynb").stat().st_size / 1e6
        archived = sorted(work.glob(".nbops/artifacts/runs/bench/r0/big/attempt-*/output.ipynb"))
        archived_size = archived[0].stat().st_size / 1e6 if archived else float("nan")
    nb_med, pm_med = statistics.median(nb_times), statistics.median(pm_times)
    print(f"{args.cells} cells printing {args.megabytes:g} MB each, median of {args.repeats} interleaved runs each")
    print(f"  executed notebook: papermill {size:.1f} MB, nbops {archived_size:.1f} MB")
    print(f"  nbops exec-stage  {nb_med:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in nb_times)})")
    print(f"  papermill         {pm_med:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in pm_times)})")
    print(f"  ratio nbops/papermill = {nb_med / pm_med:.2f}   (target <= 2)")


if __name__ == "__main__":
    main()
