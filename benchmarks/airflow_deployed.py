"""The example pipeline under a real Airflow scheduler versus ``nbops run``, same machine, same run.

    .venv/bin/python benchmarks/airflow_deployed.py [--repeats 2] [--conf '{"optimize.n_iter": 2}']

Starts the deployment the Airflow tests drive (``tests/airflow/deployment.py``: PostgreSQL, moto's
S3, MLflow's tracking server on PostgreSQL proxying artifacts to S3, Airflow's api-server,
scheduler, dag-processor and triggerer with the LocalExecutor, stages on the local backend),
promotes a copy of the example, then, alternately for each repeat and each on its own run date
(so that nothing is reused):

- a DAG run triggered through the REST API: wall time from the trigger to the run seen finished
  (polled every 0.5 s), and Airflow's own start-to-end;
- ``nbops run pipeline.yaml --force`` with the same parameters, recording to the same MLflow
  server and artifact root.

Printed: medians, the ratio Airflow / ``nbops run``, and the scheduling latency between
consecutive stages (a task's start minus the end of its last upstream task, as Airflow
records them): median, 95th percentile and maximum over every edge of every DAG run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.airflow.deployment import Deployment, wait_for  # noqa: E402 - after the repository joins the path

DAG = "diagnosis"


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def airflow_run(d: Deployment, conf: dict[str, Any], day: str) -> tuple[float, float, list[float]]:
    """One DAG run: (client wall s, Airflow's start-to-end s, scheduling latencies s)."""
    start = time.perf_counter()
    run_id = d.trigger(DAG, conf, logical_date=f"{day}T02:00:00Z")
    while (state := d.run_state(DAG, run_id)) not in ("success", "failed"):
        time.sleep(0.5)
    wall = time.perf_counter() - start
    if state != "success":
        raise SystemExit(f"DAG run {run_id} {state}: {d.task_states(DAG, run_id)}")
    run = d.call("GET", f"/dags/{DAG}/dagRuns/{run_id}")
    recorded = (_time(run["end_date"]) - _time(run["start_date"])).total_seconds()
    return wall, recorded, latencies(d, run_id)


def latencies(d: Deployment, run_id: str) -> list[float]:
    """For every task that ran after upstream tasks: its start minus its last upstream's end."""
    graph = d.call("GET", f"/dags/{DAG}/tasks")["tasks"]
    upstream: dict[str, list[str]] = {}
    for task in graph:
        for child in task["downstream_task_ids"]:
            upstream.setdefault(child, []).append(task["task_id"])
    tis = d.tasks(DAG, run_id)
    found = []
    for task_id, parents in upstream.items():
        ti = tis.get(task_id)
        ends = [tis[p]["end_date"] for p in parents if tis.get(p, {}).get("end_date")]
        if ti and ti.get("start_date") and ti["state"] == "success" and ends:
            found.append((_time(ti["start_date"]) - max(_time(e) for e in ends)).total_seconds())
    return found


def nbops_run(d: Deployment, conf: dict[str, Any], day: str) -> float:
    overrides = [arg for key, value in conf.items() for arg in ("-p", f"{key}={value}")]
    start = time.perf_counter()
    done = d.nbops("run", "pipeline.yaml", "--force", "--run-date", day, *overrides, timeout=1800)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"nbops run exited {done.returncode}:\n{done.stderr[-3000:]}")
    return wall


def settled(d: Deployment) -> bool:
    """Whether the DAG has runs and every one of them finished."""
    runs = d.runs(DAG)
    return bool(runs) and all(r["state"] in ("success", "failed") for r in runs)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--conf", default="{}", help="DAG run conf, also given to nbops run as -p (JSON)")
    args = parser.parse_args()
    conf = json.loads(args.conf)
    with tempfile.TemporaryDirectory(prefix="nbops-bench-airflow-") as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        shutil.copy(ROOT / "pipeline.yaml", project / "pipeline.yaml")
        shutil.copytree(ROOT / "notebooks", project / "notebooks")
        d = Deployment(Path(tmp) / "servers", project)
        try:
            started = time.perf_counter()
            d.start()
            promoted = d.nbops("promote", "pipeline.yaml")
            if promoted.returncode != 0:
                raise SystemExit(promoted.stderr)
            d.wait_parsed([DAG])
            d.unpause(DAG)
            # Unpaused, the DAG's cron makes the scheduler start a run for the latest interval; with
            # max_active_runs 1 a triggered run would queue behind it: let it finish first.
            wait_for("the scheduler's own first run", lambda: settled(d), bool, 1800, every=2)
            print(f"deployment up, DAG parsed and its scheduled run done in {time.perf_counter() - started:.1f} s")
            measure(d, conf, args.repeats)
        finally:
            left = d.stop()
            if left:
                print(f"left running at the end (killed): {left}")


def measure(d: Deployment, conf: dict[str, Any], repeats: int) -> None:
    walls, recorded, local, gaps = [], [], [], []
    for n in range(repeats):
        wall, inside, lat = airflow_run(d, conf, f"2026-05-{2 * n + 1:02d}")
        walls.append(wall)
        recorded.append(inside)
        gaps.extend(lat)
        local.append(nbops_run(d, conf, f"2026-05-{2 * n + 2:02d}"))
        print(f"repeat {n + 1}: Airflow {wall:.1f} s (recorded {inside:.1f} s), nbops run {local[-1]:.1f} s")
    a, b = statistics.median(walls), statistics.median(local)
    inside = statistics.median(recorded)
    print(f"example under the real scheduler: median {a:.1f} s (Airflow's own start-to-end {inside:.1f} s)")
    print(f"example with nbops run:           median {b:.1f} s")
    print(f"ratio Airflow / nbops run: {a / b:.2f}")
    print(
        f"scheduling latency between consecutive tasks ({len(gaps)} edges): median {statistics.median(gaps):.2f} s, "
        f"p95 {percentile(gaps, 0.95):.2f} s, max {max(gaps):.2f} s"
    )


if __name__ == "__main__":
    main()
