"""Stage command overhead, measured against the bare Papermill CLI in the same run.

    .venv/bin/python benchmarks/stage_overhead.py [--repeats 5]

(a) wall time of ``nbops exec-stage`` versus ``papermill`` on the same trivial notebook,
    interleaved, median of N runs each (target ratio <= 1.3);
(b) peak RSS (VmHWM) of the stage command's own process versus papermill's process;
(c) a diamond pipeline (root -> four independent 2-second stages -> sink) under
    ``nbops run --jobs 4``: wall time versus the sum of the stage times (target <= 0.6).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import nbformat
import yaml
from common import BIN, one_stage


def write_notebook(path: Path, cells: list[tuple[str, list[str]]]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for source, tags in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.write(nb, path)


def timed(cmd: list[str], cwd: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB, VmHWM of the process itself, sampled until exit)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}")
    return elapsed, peak


def overhead(repeats: int, work: Path) -> None:
    write_notebook(work / "trivial.ipynb", [("x = 1", ["parameters"]), ("y = x + 1", [])])
    nbops, papermill = one_stage(work, "trivial.ipynb", "t")
    timed([*nbops, "warmup"], work)  # creates the MLflow schema once, as any first run does
    timed(papermill, work)
    nb_times, pm_times, nb_rss, pm_rss = [], [], [], []
    for i in range(repeats):
        t, rss = timed([*nbops, f"r{i}"], work)
        nb_times.append(t)
        nb_rss.append(rss)
        t, rss = timed(papermill, work)
        pm_times.append(t)
        pm_rss.append(rss)
    nb_med, pm_med = statistics.median(nb_times), statistics.median(pm_times)
    print(f"(a) trivial notebook, median of {repeats} interleaved runs each")
    print(f"    nbops exec-stage  {nb_med:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in nb_times)})")
    print(f"    papermill         {pm_med:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in pm_times)})")
    print(f"    ratio nbops/papermill = {nb_med / pm_med:.2f}   (target <= 1.3)")
    nb_peak, pm_peak = statistics.median(nb_rss), statistics.median(pm_rss)
    print("(b) peak RSS of the command's own process (median VmHWM)")
    print(f"    nbops exec-stage  {nb_peak / 1024:6.1f} MiB")
    print(f"    papermill         {pm_peak / 1024:6.1f} MiB")
    print(f"    ratio nbops/papermill = {nb_peak / pm_peak:.2f}")


def diamond(work: Path) -> None:
    sleep = [("import time\ntime.sleep(2)", [])]
    stages: dict[str, dict[str, object]] = {"root": {"notebook": "quick.ipynb"}}
    write_notebook(work / "quick.ipynb", [("x = 1", [])])
    write_notebook(work / "sleep.ipynb", sleep)
    for name in ("b1", "b2", "b3", "b4"):
        stages[name] = {"notebook": "sleep.ipynb", "needs": ["root"]}
    stages["sink"] = {"notebook": "quick.ipynb", "needs": ["b1", "b2", "b3", "b4"]}
    (work / "pipeline.yaml").write_text(yaml.safe_dump({"name": "diamond", "stages": stages}))
    timed([str(BIN / "nbops"), "run", "--stage", "root", "--run-id", "warmup"], work)
    wall, _ = timed([str(BIN / "nbops"), "run", "--jobs", "4", "--run-id", "measured"], work)
    results = [
        json.loads(p.read_text()) for p in (work / ".nbops/artifacts/runs/diamond/measured/.logs").glob("*.json")
    ]
    total = sum(r["duration_s"] for r in results)
    print("(c) diamond: root -> 4 independent 2 s stages -> sink, nbops run --jobs 4")
    print(f"    wall {wall:.2f} s, sum of {len(results)} stage times {total:.2f} s")
    print(f"    ratio wall/sum = {wall / total:.2f}   (target <= 0.6)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command in (a) and (b)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nbops-bench-") as tmp:
        (Path(tmp) / "a").mkdir()
        (Path(tmp) / "c").mkdir()
        overhead(max(args.repeats, 5), Path(tmp) / "a")
        diamond(Path(tmp) / "c")


if __name__ == "__main__":
    main()
