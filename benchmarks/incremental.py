"""Incremental runs and `nbops test`, on copies of the example pipeline (medians, same run).

    .venv/bin/python benchmarks/incremental.py [--repeats 3]

(a) an unchanged re-run of the example (`nbops run` again: every stage reuses the first run's
    attempts, no notebook runs) versus its first run in a fresh copy (target ratio <= 0.1);
(b) `nbops test` of the example (its stages' test_parameters, a throwaway store, then the
    monitor's dry run) versus `nbops run` of it (its production parameters).
Runs are interleaved: each repeat makes a fresh copy, runs it, re-runs it, then tests it.
Every run uses the same run date, so the batch it reads is the same.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import BIN

ROOT = Path(__file__).resolve().parent.parent
RUN_DATE = "2026-06-01"
TARGET_RERUN = 0.1


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    """Wall seconds of ``cmd`` and its stderr; stops the benchmark if it fails."""
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return wall, done.stderr


def fresh_copy(parent: Path, n: int) -> Path:
    work = parent / f"example-{n}"
    work.mkdir()
    shutil.copy(ROOT / "pipeline.yaml", work / "pipeline.yaml")
    shutil.copytree(ROOT / "notebooks", work / "notebooks")
    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    nbops = str(BIN / "nbops")
    first, rerun, test = [], [], []
    with tempfile.TemporaryDirectory(prefix="nbops-bench-incremental-") as tmp:
        for n in range(args.repeats):
            work = fresh_copy(Path(tmp), n)
            wall, _ = timed([nbops, "run", "pipeline.yaml", "--run-date", RUN_DATE], work)
            first.append(wall)
            wall, log = timed([nbops, "run", "pipeline.yaml", "--run-date", RUN_DATE], work)
            ran = log.count("no notebook ran")
            if ran != 6:
                raise SystemExit(f"the unchanged re-run reused {ran} of 6 stages:\n{log[-3000:]}")
            rerun.append(wall)
            wall, _ = timed([nbops, "test", "pipeline.yaml"], work)
            test.append(wall)
            print(f"repeat {n + 1}: first run {first[-1]:.2f} s, re-run {rerun[-1]:.2f} s, nbops test {test[-1]:.2f} s")
    med_first, med_rerun, med_test = (statistics.median(v) for v in (first, rerun, test))
    print()
    print(f"{'measure':<44}{'median s':>10}{'ratio':>8}{'target':>8}")
    print(f"{'nbops run, first run (6 stages executed)':<44}{med_first:>10.2f}")
    verdict = "met" if med_rerun / med_first <= TARGET_RERUN else "not met"
    ratio = med_rerun / med_first
    print(f"{'nbops run, unchanged re-run (6 reused)':<44}{med_rerun:>10.2f}{ratio:>8.3f}{TARGET_RERUN:>8} {verdict}")
    print(f"{'nbops test (test_parameters, + monitor)':<44}{med_test:>10.2f}{med_test / med_first:>8.3f}")


if __name__ == "__main__":
    main()
