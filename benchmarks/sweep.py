"""Sweeps: an 8-point sweep against 8 sequential Papermill runs, and how a sweep's cost scales.

    .venv/bin/python benchmarks/sweep.py [--repeats 3] [--points 200]

(a) `nbops run --jobs 2` of a pipeline whose one stage sweeps a 2-second notebook over 8 points,
    against Papermill running the same notebook 8 times one after the other with the same
    parameters (medians of --repeats, interleaved; target ratio <= 0.6);
(b) `nbops lint`, `nbops promote` and the DAG's parse (Airflow's DagBag of the promoted DAG) of a
    10-point grid and of a 1,000-point grid (under Airflow's max_map_length of 1,024): the
    difference is what the points cost;
(c) `nbops run --jobs 2` of --points trivial points: each point's wall time (from the stage
    results the runner keeps) against its index, first and last quarter compared; a per-point
    cost that grows with the index would show as a ratio well above 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import yaml
from common import BIN

TARGET = 0.6
SLEEP_S = 2.0


def notebook(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("x = 0\nlabel = 'a'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)


def project(work: Path, sweep: dict[str, object], body: str) -> Path:
    work.mkdir(parents=True)
    notebook(work / "point.ipynb", body)
    spec = {"name": "bench", "stages": {"point": {"notebook": "point.ipynb", **sweep}}}
    (work / "pipeline.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return work


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return wall


def speed(tmp: Path, repeats: int) -> None:
    nbops, papermill = str(BIN / "nbops"), str(BIN / "papermill")
    body = f"import time\ntime.sleep({SLEEP_S})\nprint(x, label)"
    swept, serial = [], []
    for n in range(repeats):
        work = project(tmp / f"speed-{n}", {"grid": {"x": list(range(4)), "label": ["a", "b"]}}, body)
        swept.append(timed([nbops, "run", "pipeline.yaml", "--jobs", "2"], work))
        start = time.perf_counter()
        for x in range(4):
            for label in ("a", "b"):
                args = ["--no-progress-bar", "-p", "x", str(x), "-p", "label", label]
                timed([papermill, *args, "point.ipynb", f"out-{x}{label}.ipynb"], work)
        serial.append(time.perf_counter() - start)
        print(
            f"repeat {n + 1}: nbops sweep (8 points, --jobs 2) {swept[-1]:.2f} s, 8 papermill runs {serial[-1]:.2f} s"
        )
    a, b = statistics.median(swept), statistics.median(serial)
    verdict = "met" if a / b <= TARGET else "not met"
    print(
        f"\n(a) 8-point sweep of a {SLEEP_S:g}-second notebook, nbops run --jobs 2: median {a:.2f} s; "
        f"8 sequential papermill runs: median {b:.2f} s; ratio {a / b:.3f} (target <= {TARGET}: {verdict})"
    )


PROBE = """
import runpy, sys, time
from airflow.sdk import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
start = time.perf_counter()
namespace = runpy.run_path(sys.argv[1])
elapsed = time.perf_counter() - start
assert len([v for v in namespace.values() if isinstance(v, DAG)]) == 1
print(elapsed)
"""


def parse_seconds(dags: Path) -> float:
    """Seconds of ``runpy.run_path`` of the generated DAG file in a fresh process, after the imports
    any such file makes (as benchmarks/dag_parse.py measures it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NBOPS_", "MLFLOW_"))}
    env |= {"AIRFLOW_HOME": str(dags.parent / "airflow-home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    (dag_file,) = [p for p in dags.glob("*.py")]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(dag_file)], capture_output=True, text=True, check=False, env=env
    )
    if done.returncode != 0:
        raise SystemExit(f"parsing {dag_file} failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def scale(tmp: Path, repeats: int) -> None:
    nbops = str(BIN / "nbops")
    rows = {}
    for points in (10, 1000):
        grid = {"x": list(range(points // 2)), "label": ["a", "b"]}
        lint, promote, parse = [], [], []
        for n in range(repeats):
            work = project(tmp / f"scale-{points}-{n}", {"grid": grid}, "print(x, label)")
            lint.append(timed([nbops, "lint", "pipeline.yaml"], work))
            promote.append(timed([nbops, "promote", "pipeline.yaml"], work))
            parse.append(parse_seconds(work / "dags"))
        rows[points] = tuple(statistics.median(v) for v in (lint, promote, parse))
    print(f"\n(b) {'grid':<12}{'lint s':>9}{'promote s':>11}{'DAG parse s':>13}")
    for points, (lint_s, promote_s, parse_s) in rows.items():
        print(f"    {points:>5} points{lint_s:>9.2f}{promote_s:>11.2f}{parse_s:>13.2f}")
    extra = [b - a for a, b in zip(rows[10], rows[1000], strict=True)]
    per = [1000 * e / 990 for e in extra]
    print(
        f"    990 more points cost: lint {extra[0]:+.2f} s, promote {extra[1]:+.2f} s, parse {extra[2]:+.2f} s "
        f"({per[0]:.2f} / {per[1]:.2f} / {per[2]:.2f} ms per point)"
    )


def per_point(tmp: Path, points: int) -> None:
    nbops = str(BIN / "nbops")
    work = project(tmp / "many", {"grid": {"x": list(range(points))}}, "print(x)")
    wall = timed([nbops, "run", "pipeline.yaml", "--jobs", "2"], work)
    (logs,) = (work / ".nbops" / "artifacts" / "runs" / "bench").glob("*/.logs")
    durations = {}
    for result in logs.glob("point.*-1.result.json"):
        data = json.loads(result.read_text())
        durations[int(data["point"]["index"])] = float(data["duration_s"])
    if len(durations) != points:
        raise SystemExit(f"{len(durations)} of {points} points left a result")
    quarter = points // 4
    first = statistics.median(durations[i] for i in range(quarter))
    last = statistics.median(durations[i] for i in range(points - quarter, points))
    print(
        f"\n(c) {points} trivial points, nbops run --jobs 2: {wall:.1f} s in all, {wall / points:.3f} s per point; "
        f"a point's own duration, median of the first quarter {first:.3f} s, of the last quarter {last:.3f} s, "
        f"ratio last/first {last / first:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--skip", choices=["speed", "scale", "points"], action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nbops-bench-sweep-") as tmp:
        if "speed" not in args.skip:
            speed(Path(tmp), args.repeats)
        if "scale" not in args.skip:
            scale(Path(tmp), args.repeats)
        if "points" not in args.skip:
            per_point(Path(tmp), args.points)


if __name__ == "__main__":
    main()
