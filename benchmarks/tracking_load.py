"""MLflow's tracking server under a cluster's load: PostgreSQL against SQLite, in the same run.

    .venv/bin/python benchmarks/tracking_load.py [--attempts 50] [--workers 2] [--json FILE]

On 127.0.0.1: PostgreSQL, moto's S3 (``tests/``) and, in turn, ``mlflow server --workers W
--artifacts-destination s3://...`` (artifacts proxied, ``mlflow-artifacts:``) on PostgreSQL and,
the reference, on SQLite. Each is warmed up, then loaded by ``--attempts`` spawned processes (as
pods; given only ``MLFLOW_TRACKING_URI``) released together by an Event, each making the calls of
an nbops stage attempt (``nbops/stage/tracker.py``, with its HTTP retries): probe, find experiment
and parent run, create a nested run, log 8 params, 5 metrics x 3 steps, 5 tags, a 200 KB notebook,
a 300 KB page, a manifest, end FINISHED. Measured client-side: each call's latency, each attempt's
wall time, the time to the last attempt; counted in the server's access log: its 5xx answers (the
client retries them). Then verified through the server: N FINISHED child runs with their tags,
params, metric histories and artifacts (compared byte for byte). Exit code 1 on any error or loss.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import multiprocessing
import os
import queue
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from nbops.tracking.store import bound_http_retries, quiet_mlflow_logs
from tests import mlflowserver
from tests.conftest import free_port
from tests.pgserver import PgServer
from tests.s3server import BUCKET, S3Server

if TYPE_CHECKING:
    from mlflow import MlflowClient

T = TypeVar("T")
EXPERIMENT, PIPELINE_RUN = "tracking-load", "load-run"
PARAMS, METRICS, STEPS = 8, 5, 3
SIZES = {"notebook.ipynb": 200_000, "notebook.html": 300_000}
START_TIMEOUT, RUN_TIMEOUT, SERVER_TIMEOUT = 900.0, 1800.0, 120.0
SERVER_ERROR = re.compile(rb'HTTP/[0-9.]+" 5[0-9][0-9]\b')  # uvicorn's access log: '"POST /x HTTP/1.1" 500 ...'


@dataclass
class Attempt:
    """What one attempt process reports: its calls (kind, seconds, succeeded) and wall time."""

    index: int
    calls: list[tuple[str, float, bool]] = field(default_factory=list)
    wall: float = 0.0
    error: str = ""


def sent(index: int, parent_id: str) -> tuple[dict[str, str], dict[str, str], dict[str, str], dict[str, list[float]]]:
    """What attempt ``index`` logs: the tags it starts with, params, end tags, each metric at each step."""
    nbops = {"kind": "stage", "stage": f"stage-{index}", "attempt": "1", "run_id": PIPELINE_RUN}
    start = {"mlflow.parentRunId": parent_id, **{f"nbops.{k}": v for k, v in nbops.items()}}
    params = {f"param_{k}": f"attempt-{index}-value-{k}" for k in range(PARAMS)}
    tags = {f"nbops.end_{k}": f"attempt-{index}-tag-{k}" for k in range(5)}
    metrics = {f"metric_{k}": [index + step / 8 + k / 1024 for step in range(STEPS)] for k in range(METRICS)}
    return start, params, tags, metrics


def artifacts(index: int) -> dict[str, bytes]:
    """A notebook-like JSON, an HTML page (incompressible filler, as outputs are) and a manifest."""
    rng = random.Random(index)  # noqa: S311 - filler, not secrets
    filler = {name: rng.randbytes(size // 2).hex()[: size - 200] for name, size in SIZES.items()}
    notebook = {"cells": [{"cell_type": "code", "source": filler["notebook.ipynb"]}], "nbformat": 4, "i": index}
    page = f"<html><body><pre>{filler['notebook.html']}</pre><p>{index}</p></body></html>"
    manifest = json.dumps({"stage": f"stage-{index}", "files": sorted(SIZES), "attempt": 1}, sort_keys=True)
    texts = {"notebook.ipynb": json.dumps(notebook), "notebook.html": page, "manifest.json": manifest}
    return {name: text.encode() for name, text in texts.items()}


def write_files(files: Path, index: int) -> Path:
    files.mkdir(parents=True)
    for name, raw in artifacts(index).items():
        (files / name).write_bytes(raw)
    return files


def timed(result: Attempt, kind: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    start, ok = time.perf_counter(), False
    try:
        answer = call(*args, **kwargs)
        ok = True
        return answer
    finally:
        result.calls.append((kind, time.perf_counter() - start, ok))


def stage_calls(client: MlflowClient, result: Attempt, exp_id: str, parent_id: str, files: Path) -> None:
    """The calls of one nbops stage attempt, in its order."""
    from mlflow.entities import Metric, Param, RunTag

    i, (start, params, tags, metrics) = result.index, sent(result.index, parent_id)
    timed(result, "search_experiments (probe)", client.search_experiments, max_results=1)
    timed(result, "get_experiment_by_name", client.get_experiment_by_name, EXPERIMENT)
    found = f"tags.`nbops.run_id` = '{PIPELINE_RUN}' and tags.`nbops.kind` = 'pipeline'"
    order = ["attributes.start_time ASC"]
    timed(result, "search_runs (parent)", client.search_runs, [exp_id], found, order_by=order, max_results=50)
    run = timed(result, "create_run", client.create_run, exp_id, tags=start, run_name=f"s{i} #1")
    run_id = str(run.info.run_id)
    timed(result, "log_batch (params)", client.log_batch, run_id, params=[Param(k, v) for k, v in params.items()])
    for step in range(STEPS):
        now = int(time.time() * 1000)
        values = [Metric(k, v[step], now, step) for k, v in metrics.items()]
        timed(result, "log_batch (metrics)", client.log_batch, run_id, metrics=values)
    timed(result, "log_batch (tags)", client.log_batch, run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    for name in SIZES:
        timed(result, "log_artifact", client.log_artifact, run_id, str(files / name))
    manifest = (files / "manifest.json").read_text()
    timed(result, "log_text (manifest)", client.log_text, run_id, manifest, "manifest.json")
    timed(result, "set_terminated", client.set_terminated, run_id, "FINISHED")


def attempt_process(uri: str, index: int, ids: tuple[str, str], root: str, sync: Any, out: Any) -> None:
    """One attempt in its own process: a pod's environment, MLflow imported, ready, then released."""
    for name in [k for k in os.environ if k.startswith(("MLFLOW_", "AWS_", "NBOPS_"))]:
        del os.environ[name]
    os.environ.update({"MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"})
    result, (ready, go) = Attempt(index), sync  # a Semaphore and an Event
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # MLflow prints the run's URL when it ends
            from mlflow import MlflowClient

            bound_http_retries()
            quiet_mlflow_logs()
            client = MlflowClient()
            client.get_experiment(ids[0])
            files = write_files(Path(root) / f"attempt-{index}", index)
            ready.release()
            if not go.wait(timeout=START_TIMEOUT):
                raise TimeoutError("never released")
            start = time.perf_counter()
            try:
                stage_calls(client, result, ids[0], ids[1], files)
            finally:
                result.wall = time.perf_counter() - start
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:400]
    out.put(result)


@dataclass
class Server:
    popen: subprocess.Popen[bytes]
    log: Path
    port: int
    uri: str


def start_server(name: str, backend: str, s3: S3Server, root: Path, workers: int) -> Server:
    port, log = free_port(), root / f"mlflow-{name}.log"
    destination = f"s3://{BUCKET}/{name.lower()}"
    popen = mlflowserver.spawn(backend, destination, port, s3, log, {"MLFLOW_DISABLE_TELEMETRY": "true"}, workers)
    server = Server(popen, log, port, f"http://127.0.0.1:{port}")
    if mlflowserver.wait_healthy(server.uri, popen, SERVER_TIMEOUT):
        return server
    stop_server(server)
    raise SystemExit(f"MLflow server on {name} did not start:\n{log.read_text(errors='replace')[-3000:]}")


def stop_server(server: Server) -> list[str]:
    """SIGTERM the server's process group, SIGKILL after a grace; the command lines that outlived it."""
    tree = psutil.Process(server.popen.pid).children(recursive=True) if server.popen.poll() is None else []
    if server.popen.poll() is None:
        os.killpg(server.popen.pid, signal.SIGTERM)
        try:
            server.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.popen.pid, signal.SIGKILL)
            server.popen.wait(timeout=30)
    left = []
    for proc in psutil.wait_procs(tree, timeout=10)[1]:
        with contextlib.suppress(psutil.NoSuchProcess):
            left.append(" ".join(proc.cmdline()))
            proc.kill()
    return left


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def load(server: Server, attempts: int, root: Path) -> tuple[list[Attempt], float, int, list[str]]:
    """The attempts' results, seconds from release to last result, the server's 5xx, what is missing."""
    from mlflow import MlflowClient

    client = MlflowClient(server.uri)
    exp_id = client.create_experiment(EXPERIMENT)
    parent_tags = {"nbops.kind": "pipeline", "nbops.run_id": PIPELINE_RUN}
    parent_id = str(client.create_run(exp_id, tags=parent_tags, run_name=PIPELINE_RUN).info.run_id)
    context = multiprocessing.get_context("spawn")
    sync, out = (context.Semaphore(0), context.Event()), context.Queue()
    args = [(server.uri, i, (exp_id, parent_id), str(root), sync, out) for i in range(attempts)]
    procs: list[BaseProcess] = [context.Process(target=attempt_process, args=a) for a in args]
    try:
        for proc in procs:
            proc.start()
        deadline, ready = time.monotonic() + START_TIMEOUT, 0
        while ready < attempts:  # release them together once all are ready; fail fast if one died
            if sync[0].acquire(timeout=1):
                ready += 1
            elif time.monotonic() > deadline or any(p.exitcode is not None for p in procs):
                raise RuntimeError(f"only {ready} of {attempts} attempt processes got ready")
        sync[1].set()
        logged, start = server.log.stat().st_size, time.perf_counter()
        results: list[Attempt] = []
        while len(results) < attempts and time.perf_counter() < start + RUN_TIMEOUT:
            with contextlib.suppress(queue.Empty):
                results.append(out.get(timeout=1))
            if not any(p.is_alive() for p in procs) and out.empty():
                break
        total = time.perf_counter() - start
        with server.log.open("rb") as log:
            server_errors = len(SERVER_ERROR.findall(log.read()[logged:]))
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()
    problems = verify(client, exp_id, parent_id, attempts, root / "downloads")
    client.set_terminated(parent_id, "FINISHED")
    return results, total, server_errors, problems


def verify(client: MlflowClient, exp_id: str, parent_id: str, attempts: int, downloads: Path) -> list[str]:
    """What the server holds against what every attempt sent; a line per thing missing or wrong."""
    location = client.get_experiment(exp_id).artifact_location
    problems = [] if location.startswith("mlflow-artifacts:") else [f"artifacts not proxied: {location}"]
    runs: list[Any] = []
    downloads.mkdir(parents=True)
    token = None
    while token != "":
        page = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent_id}'", page_token=token)
        runs, token = [*runs, *page], page.token or ""
    indices = [int(run.data.tags.get("nbops.stage", "stage--1").removeprefix("stage-")) for run in runs]
    if sorted(indices) != list(range(attempts)):
        problems.append(f"{len(runs)} child runs, of attempts {sorted(indices)}; expected 0..{attempts - 1} once each")
    for run, index in zip(runs, indices, strict=True):
        start, params, tags, metrics = sent(index, parent_id)
        wrong = [] if run.info.status == "FINISHED" else [f"status {run.info.status}"]
        if any(run.data.tags.get(k) != v for k, v in {**start, **tags}.items()):
            wrong.append("tags missing or wrong")
        if run.data.params != params:
            wrong.append(f"params {run.data.params}")
        for key, values in metrics.items():
            history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
            if history != list(enumerate(values)):
                wrong.append(f"metric {key}: history {history}")
        listed = {a.path: a.file_size for a in client.list_artifacts(run.info.run_id)}
        if listed != {name: len(raw) for name, raw in artifacts(index).items()}:
            wrong.append(f"artifacts listed {listed}")
        for name, raw in artifacts(index).items() if not wrong else ():
            if Path(client.download_artifacts(run.info.run_id, name, str(downloads))).read_bytes() != raw:
                wrong.append(f"artifact {name} differs")
        problems += [f"run {run.info.run_id} (attempt {index}): {w}" for w in wrong]
    return problems


def median_p95(values: Sequence[float]) -> list[float]:
    """Median and 95th percentile (nearest rank: of 20 values, the 19th smallest)."""
    if not values:
        return [math.nan, math.nan]
    ordered = sorted(values)
    return [statistics.median(ordered), ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]]


def summary(name: str, results: list[Attempt], attempts: int, total: float, server_errors: int) -> dict[str, Any]:
    calls = [c for r in results for c in r.calls]
    latencies = [seconds * 1000 for _, seconds, ok in calls if ok]
    walls = [r.wall for r in results if not r.error]
    errors = [f"attempt {r.index}: {r.error}" for r in results if r.error]  # each ends its attempt
    errors += [f"attempt {i}: reported nothing" for i in sorted(set(range(attempts)) - {r.index for r in results})]
    (call_median, call_p95), (attempt_median, attempt_p95) = median_p95(latencies), median_p95(walls)
    kinds = sorted({kind for kind, _, _ in calls})
    return {
        **{"backend": name, "calls": len(calls), "errors": len(errors), "server_5xx": server_errors},
        **{"call_median_ms": call_median, "call_p95_ms": call_p95, "total_s": total},
        **{"attempt_median_s": attempt_median, "attempt_p95_s": attempt_p95},
        "per_call_ms": {k: median_p95([s * 1000 for kind, s, ok in calls if kind == k and ok]) for k in kinds},
        "error_messages": errors[:20],
    }


COLUMNS = [  # heading, key, width, format
    *[("calls", "calls", 7, "d"), ("errors", "errors", 8, "d"), ("5xx", "server_5xx", 6, "d")],
    *[("call med ms", "call_median_ms", 13, ".1f"), ("call p95 ms", "call_p95_ms", 13, ".1f")],
    *[("attempt med s", "attempt_median_s", 15, ".2f"), ("attempt p95 s", "attempt_p95_s", 15, ".2f")],
    ("total s", "total_s", 9, ".2f"),
]


def report(pg: dict[str, Any], lite: dict[str, Any], args: argparse.Namespace) -> dict[str, float]:
    ratios = {key: pg[key] / lite[key] for _, key, _, _ in COLUMNS[3:]}
    print(f"{args.attempts} concurrent stage attempts (spawned processes), {args.workers} server workers each")
    print(f"{'':28}" + "".join(f"{heading:>{width}}" for heading, _, width, _ in COLUMNS))
    for label, row in (("PostgreSQL", pg), ("SQLite", lite), ("ratio PostgreSQL/SQLite", ratios)):
        spec = [(k, w, f">{w}{'.2f' if row is ratios else f}") for _, k, w, f in COLUMNS]
        print(f"    {label:<24}" + "".join(format(row[k], f) if k in row else " " * w for k, w, f in spec))
    print(f"  per call, median / p95 ms{'PostgreSQL':>26}{'SQLite':>22}")
    for kind in sorted(set(pg["per_call_ms"]) | set(lite["per_call_ms"])):
        pairs = [s["per_call_ms"].get(kind, [math.nan, math.nan]) for s in (pg, lite)]
        print(f"    {kind:<28}" + "".join(f"{m:>10.1f} / {p:>9.1f}" for m, p in pairs))
    for s in (pg, lite):
        verdict = "all runs, params, metrics and artifacts right" if not s["problems"] else "PROBLEMS"
        print(f"  verified through the {s['backend']} server: {verdict}")
        for line in s["error_messages"] + s["problems"][:20]:
            print(f"      {line}")
    return ratios


def measure(name: str, backend: str, s3: S3Server, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    server = start_server(name, backend, s3, root, args.workers)
    try:
        from mlflow import MlflowClient

        client = MlflowClient(server.uri)  # warm-up, in turn: the workers import, connect to the store and S3
        exp_id = client.create_experiment("warm-up")
        parent_id = str(client.create_run(exp_id, run_name="warm-up").info.run_id)
        for i in range(args.warmup):
            stage_calls(client, Attempt(i), exp_id, parent_id, write_files(root / f"{name}-files" / f"warm-up-{i}", i))
        results, total, server_errors, problems = load(server, args.attempts, root / f"{name}-files" / "load")
    except BaseException:
        print(f"MLflow server log ({name}), last lines:\n{server.log.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        left = stop_server(server)
    if left or listening(server.port):
        problems.append(f"the {name} server left {left or 'its port listening'}")
    return {**summary(name, results, args.attempts, total, server_errors), "problems": problems}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attempts", type=int, default=50, help="concurrent stage attempts per server")
    parser.add_argument("--workers", type=int, default=2, help="MLflow server worker processes")
    parser.add_argument("--warmup", type=int, default=4, help="unmeasured attempts before the load")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    # This process's own calls (warm-up, verification): no progress bars, no run URLs.
    quiet = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
    os.environ.update(quiet)
    pg, s3 = PgServer(), S3Server()
    try:
        with tempfile.TemporaryDirectory(prefix="nbops-bench-tracking-") as tmp:
            root = Path(tmp)
            pg.start()
            s3.start()
            pg_results = measure("PostgreSQL", pg.create_database("mlflow"), s3, root, args)
            lite_results = measure("SQLite", f"sqlite:///{root / 'mlflow.db'}", s3, root, args)
    finally:
        s3.stop()
        pg.stop()
    if listening(pg.port):
        pg_results["problems"].append("PostgreSQL still listening after its stop")
    ratios = report(pg_results, lite_results, args)
    if args.json:
        figures = {"attempts": args.attempts, "workers": args.workers, "ratios_pg_over_sqlite": ratios}
        args.json.write_text(json.dumps({**figures, "postgresql": pg_results, "sqlite": lite_results}, indent=2))
    return 1 if any(s["errors"] or s["problems"] for s in (pg_results, lite_results)) else 0


if __name__ == "__main__":
    sys.exit(main())
