"""Per-stage overhead, measured against bare Papermill in the same run (medians, interleaved).

    .venv/bin/python benchmarks/stage_overhead.py [--repeats 7] [--chain-repeats 3]

(a) wall time of one ``nbops exec-stage`` versus one ``papermill`` on the same 3-cell notebook
    (target ratio <= 1.5);
(b) CPU seconds of each, the command and every process it started and reaped (target <= 2.0);
(c) peak RSS (VmHWM) of the command's own process (target <= 1.5);
(d) ``nbops run`` of a chain of 6 such stages versus a loop of 6 ``papermill`` runs (target <= 1.0);
then where the stage command's time goes: the median seconds of each phase it reports in
its result file, and the rest (interpreter start, imports, exit); the same for the stages of
the chain, which ``nbops run`` starts early (prepare, boot and wait overlap the upstream stage)
and records for (their commands never import MLflow).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml
from common import BIN, one_stage

CELLS = [("x = 1", ["parameters"]), ("y = x + 1", []), ("print(y)", [])]
CHAIN = 6
TARGETS = {"wall": 1.5, "cpu": 2.0, "rss": 1.5, "chain": 1.0}


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float
    rss_kib: int


def write_notebook(path: Path, cells: list[tuple[str, list[str]]]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for source, tags in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.write(nb, path)


def measured(cmd: list[str], cwd: Path) -> Sample:
    """Wall seconds, CPU seconds (user + system of the command and its reaped descendants) and
    peak RSS (KiB, VmHWM of the command's own process, sampled until it exits)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
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
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(wall, cpu, peak)


def ratio_line(name: str, ours: float, theirs: float, unit: str, target: float) -> str:
    ratio = ours / theirs
    verdict = "met" if ratio <= target else "NOT met"
    figures = f"nbops {ours:8.2f} {unit}  papermill {theirs:8.2f} {unit}  ratio {ratio:5.2f}"
    return f"    {name:<34} {figures}  (target <= {target}: {verdict})"


def one_stage_figures(repeats: int, work: Path) -> None:
    write_notebook(work / "three.ipynb", CELLS)
    nbops, papermill = one_stage(work, "three.ipynb", "t")
    measured([*nbops, "warmup"], work)  # creates the MLflow schema once, as any first run does
    measured(papermill, work)
    ours: list[Sample] = []
    theirs: list[Sample] = []
    for i in range(repeats):
        ours.append(measured([*nbops, f"r{i}", "--result-file", str(work / f"r{i}.json")], work))
        theirs.append(measured(papermill, work))

    def med(samples: list[Sample], field: str) -> float:
        return statistics.median(float(getattr(s, field)) for s in samples)

    print(f"one stage, 3-cell notebook: medians of {repeats} interleaved runs each")
    print(ratio_line("(a) wall", med(ours, "wall"), med(theirs, "wall"), "s", TARGETS["wall"]))
    print(ratio_line("(b) CPU", med(ours, "cpu"), med(theirs, "cpu"), "s", TARGETS["cpu"]))
    print(ratio_line("(c) peak RSS", med(ours, "rss_kib") / 1024, med(theirs, "rss_kib") / 1024, "MiB", TARGETS["rss"]))
    results = [json.loads((work / f"r{i}.json").read_text()) for i in range(repeats)]
    phases = {name: statistics.median(r["phases"][name] for r in results) for name in results[0]["phases"]}
    wall = med(ours, "wall")
    print("    where one exec-stage's wall time goes (median seconds):")
    print_phases(phases)
    print(f"      {'the rest':<10} {wall - sum(phases.values()):6.2f}   (interpreter start, imports, exit)")


PHASES = ("prepare", "boot", "wait", "locate", "claim", "run", "archive", "record", "seal", "gate")


def print_phases(phases: dict[str, float]) -> None:
    for name in PHASES:
        if name in phases:
            print(f"      {name:<10} {phases[name]:6.2f}")


def chain_figure(repeats: int, work: Path) -> None:
    write_notebook(work / "three.ipynb", CELLS)
    stages: dict[str, dict[str, object]] = {}
    for i in range(CHAIN):
        stages[f"s{i}"] = {"notebook": "three.ipynb", **({"needs": [f"s{i - 1}"]} if i else {})}
    (work / "pipeline.yaml").write_text(yaml.safe_dump({"name": "chain", "stages": stages}))
    run = [str(BIN / "nbops"), "run", "pipeline.yaml", "--run-id"]
    papermill = [str(BIN / "papermill"), "--no-progress-bar", "three.ipynb", "out.ipynb"]

    def loop() -> float:
        return sum(measured(papermill, work).wall for _ in range(CHAIN))

    measured([*run, "warmup"], work)
    ours, theirs, cpu = [], [], []
    for i in range(repeats):
        sample = measured([*run, f"c{i}"], work)
        ours.append(sample.wall)
        cpu.append(sample.cpu)
        theirs.append(loop())
    print(f"(d) a chain of {CHAIN} such stages: medians of {repeats} interleaved runs each")
    print(
        ratio_line(
            f"nbops run vs {CHAIN} papermill runs",
            statistics.median(ours),
            statistics.median(theirs),
            "s",
            TARGETS["chain"],
        )
    )
    results = [json.loads(p.read_text()) for p in work.glob(".nbops/artifacts/runs/chain/c*/.logs/*.result.json")]
    phases = {name: statistics.median(r["phases"].get(name, 0.0) for r in results) for name in PHASES}
    print(f"    nbops run CPU seconds (runner, stage commands, kernels): {statistics.median(cpu):.2f}")
    print("    where a chained stage's time goes (median seconds; prepare, boot and wait overlap its upstream):")
    print_phases(phases)
    print(f"      {'duration':<10} {statistics.median(r['duration_s'] for r in results):6.2f}   (from its release)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="runs of each command in (a)-(c)")
    parser.add_argument("--chain-repeats", type=int, default=3, help="runs of each side in (d)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nbops-bench-") as tmp:
        (Path(tmp) / "one").mkdir()
        (Path(tmp) / "chain").mkdir()
        one_stage_figures(max(args.repeats, 3), Path(tmp) / "one")
        chain_figure(max(args.chain_repeats, 1), Path(tmp) / "chain")


if __name__ == "__main__":
    main()
