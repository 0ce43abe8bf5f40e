"""The data scientist's loop: what ``nbops run`` costs beyond the notebooks it runs.

    .venv/bin/python benchmarks/loop.py [--repeats 5] [--skip cached|parallel]

(i)  an unchanged re-run of a one-stage pipeline (every stage reused, so no notebook runs) against
     Papermill running the same notebook once: medians of --repeats, interleaved (target: the
     re-run <= 1.5 s);
(ii) three independent stages each sleeping 4 s, ``nbops run --jobs 3`` against ``--jobs 1``, each
     in a fresh project (target ratio <= 0.6), and the same three notebooks run one after the
     other by Papermill as the reference; medians of --repeats, interleaved.

The benchmark keeps its own cache directory (``NBOPS_CACHE_DIR``); one untimed run in a project of
its own first makes the MLflow database template there, as any earlier ``nbops run`` on the
machine would have.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from common import BIN
from sweep import notebook, timed

CACHED_TARGET_S = 1.5
PARALLEL_TARGET = 0.6
SLEEP_S = 4.0
STAGES = ("a", "b", "c")


def write_project(work: Path, stages: tuple[str, ...], body: str) -> Path:
    """A project of independent ``stages``, each its own notebook running ``body``."""
    work.mkdir(parents=True)
    for stage in stages:
        notebook(work / f"{stage}.ipynb", body)
    spec = {"name": "loop", "stages": {s: {"notebook": f"{s}.ipynb"} for s in stages}}
    (work / "pipeline.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return work


def papermill(work: Path, stages: tuple[str, ...]) -> float:
    """Seconds for Papermill to run the notebooks of ``stages`` one after the other."""
    start = time.perf_counter()
    for stage in stages:
        timed([str(BIN / "papermill"), "--no-progress-bar", f"{stage}.ipynb", f"out-{stage}.ipynb"], work)
    return time.perf_counter() - start


def cached(tmp: Path, repeats: int, env: dict[str, str]) -> None:
    nbops = [str(BIN / "nbops"), "run", "pipeline.yaml"]
    work = write_project(tmp / "cached", STAGES[:1], "print(x, label)")
    first = timed(nbops, work, env)
    reruns, reference = [], []
    for n in range(repeats):
        reruns.append(timed(nbops, work, env))
        reference.append(papermill(work, STAGES[:1]))
        print(f"repeat {n + 1}: cached re-run {reruns[-1]:.2f} s, papermill once {reference[-1]:.2f} s")
    a, b = statistics.median(reruns), statistics.median(reference)
    verdict = "met" if a <= CACHED_TARGET_S else "not met"
    print(
        f"\n(i) one-stage pipeline, first run (fresh project) {first:.2f} s; unchanged re-run (stage reused): "
        f"median {a:.2f} s (min {min(reruns):.2f}, max {max(reruns):.2f}); papermill running the notebook once: "
        f"median {b:.2f} s; ratio re-run/papermill {a / b:.3f} (target re-run <= {CACHED_TARGET_S} s: {verdict})\n"
    )


def parallel(tmp: Path, repeats: int, env: dict[str, str]) -> None:
    body = f"import time\ntime.sleep({SLEEP_S})\nprint(x, label)"
    wide, narrow, reference = [], [], []
    for n in range(repeats):
        for jobs, into in (("3", wide), ("1", narrow)):
            work = write_project(tmp / f"parallel-{n}-{jobs}", STAGES, body)
            into.append(timed([str(BIN / "nbops"), "run", "pipeline.yaml", "--jobs", jobs], work, env))
        reference.append(papermill(tmp / f"parallel-{n}-1", STAGES))
        print(
            f"repeat {n + 1}: --jobs 3 {wide[-1]:.2f} s, --jobs 1 {narrow[-1]:.2f} s, "
            f"ratio {wide[-1] / narrow[-1]:.3f}; 3 papermill runs {reference[-1]:.2f} s"
        )
    a, b, c = statistics.median(wide), statistics.median(narrow), statistics.median(reference)
    ratios = [w / s for w, s in zip(wide, narrow, strict=True)]
    verdict = "met" if statistics.median(ratios) <= PARALLEL_TARGET else "not met"
    print(
        f"\n(ii) three {SLEEP_S:g}-second stages, fresh project each run: --jobs 3 median {a:.2f} s, --jobs 1 "
        f"median {b:.2f} s; ratio of medians {a / b:.3f}, median of paired ratios {statistics.median(ratios):.3f} "
        f"(target <= {PARALLEL_TARGET}: {verdict}); papermill, the three notebooks one after the other: median "
        f"{c:.2f} s; --jobs 1 / papermill {b / c:.3f}, --jobs 3 / papermill {a / c:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip", choices=["cached", "parallel"], action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nbops-bench-loop-") as name:
        tmp = Path(name)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}
        env["NBOPS_CACHE_DIR"] = str(tmp / "cache")
        timed([str(BIN / "nbops"), "run", "pipeline.yaml"], write_project(tmp / "warm-up", STAGES[:1], "1"), env)
        if "cached" not in args.skip:
            cached(tmp, args.repeats, env)
        if "parallel" not in args.skip:
            parallel(tmp, args.repeats, env)


if __name__ == "__main__":
    main()
