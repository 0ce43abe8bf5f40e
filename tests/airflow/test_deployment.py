"""The promoted DAGs under a real Airflow (api-server, scheduler, dag-processor, triggerer,
LocalExecutor) on PostgreSQL, MLflow's tracking server on PostgreSQL proxying artifacts to S3,
driven only through Airflow's REST API (:mod:`tests.airflow.deployment`).

The scenarios share one deployment and run in this file's order: the first needs a deployment
with no champion yet. Two pipelines are promoted: ``loop`` (automatic gate, stages retried once,
several runs at once, failure alerts to a local sink, a drift monitor) and ``gated`` (manual
approval).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.airflow.deployment import Deployment, descendants, sweep, wait_for
from tests.airflow.loop import MODEL, loop_project
from tests.hookserver import HookServer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(2400)]

GATED_MODEL = "gated-model"
HUMAN = 10  # seconds a person takes to answer an approval, at the least
CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
RUN = 420  # seconds a DAG run of the loop may take here, beside the rest of the suite


class Scene:
    """The deployment, the alert sink and what the scenarios look up in MLflow."""

    def __init__(self, deployment: Deployment, hook: HookServer) -> None:
        self.d = deployment
        self.hook = hook
        self.client = deployment.mlflow()

    def records(self, pipeline: str, run_id: str) -> list[Any]:
        """Every MLflow run (pipeline and stage attempts) of DAG run ``run_id``."""
        exp = self.client.get_experiment_by_name(pipeline)
        if exp is None:
            return []
        runs = self.client.search_runs([exp.experiment_id], f"tags.`nbops.run_id` = '{run_id}'", max_results=200)
        return list(runs)

    def attempts(self, pipeline: str, run_id: str, stage: str) -> list[Any]:
        found = [r for r in self.records(pipeline, run_id) if r.data.tags.get("nbops.stage") == stage]
        return sorted(found, key=lambda r: int(r.data.tags["nbops.attempt"]))

    def open_records(self) -> list[str]:
        """Runs of any experiment still RUNNING: ``pipeline/stage run_id``."""
        experiments = [e.experiment_id for e in self.client.search_experiments()]
        runs = self.client.search_runs(experiments, "attributes.status = 'RUNNING'", max_results=500)
        return [
            f"{r.data.tags.get('nbops.pipeline')}/{r.data.tags.get('nbops.stage', 'pipeline')} {r.info.run_id}"
            for r in runs
        ]

    def champion(self, model: str = MODEL) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(model, "champion").version)
        except Exception:
            return None

    def alerts_for(self, run_id: str, timeout: float = 120) -> list[dict[str, Any]]:
        """The failure alerts naming ``run_id`` (the dag-processor runs the callback soon after the run fails)."""
        found: list[dict[str, Any]] = wait_for(
            f"a failure alert naming {run_id} at the sink",
            lambda: [m for m in self.hook.messages() if run_id in m.get("message", "")],
            bool,
            timeout,
        )
        return found


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    root = tmp_path_factory.mktemp("deployment")
    swept = sweep()
    if swept:
        print(f"stopped what a dead test process's deployment left running: {swept}")
    hook = HookServer()
    deployment = Deployment(root / "servers", root / "project")
    # The MLflow client of this process retries less than its default (minutes), so that a wait's
    # bound holds; restored afterwards.
    saved = {k: os.environ.get(k) for k in CLIENT_ENV}
    os.environ.update(CLIENT_ENV)
    try:
        yield from _started(root, hook, deployment)
    finally:
        deployment.stop()
        hook.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _started(root: Path, hook: HookServer, deployment: Deployment) -> Iterator[Scene]:
    alerts = {"urls": [hook.url()], "on": ["failure"]}
    loop_project(
        root / "project",
        approval="auto",
        alerts=alerts,
        stage={"retries": 1},
        airflow={"max_active_runs": 8, "retry_delay": 2},
    )
    gated = {"max_active_runs": 2}  # two runs wait for a person at once
    loop_project(root / "project", name="gated", model=GATED_MODEL, schedule=None, spec="gated.yaml", airflow=gated)
    deployment.start()
    for spec in ("pipeline.yaml", "gated.yaml"):
        promoted = deployment.nbops("promote", spec)
        assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    deployment.wait_parsed(["loop", "loop_monitor", "gated"])
    yield Scene(deployment, hook)


def test_a_fresh_deployment_with_both_dags_unpaused_fails_nothing_and_sends_no_alert(scene: Scene) -> None:
    """Both DAGs unpaused before any champion, the monitor's first: its scheduled run (catchup
    off: the latest interval) finds no champion, skips its check and succeeds; then the training
    DAG's scheduled run trains the first champion. No failure, no alert."""
    d = scene.d
    d.unpause("loop_monitor")
    monitor = wait_for("the monitor's scheduled run to finish", lambda: finished(d, "loop_monitor"), bool, RUN)[0]
    d.unpause("loop")
    train = wait_for("the training DAG's scheduled run to finish", lambda: finished(d, "loop"), bool, RUN)[0]
    assert (monitor["run_type"], monitor["state"]) == ("scheduled", "success")
    states = d.task_states("loop_monitor", monitor["dag_run_id"])
    assert states["monitor"] == "skipped" and states["drift_trigger"] == "skipped", states
    assert (train["run_type"], train["state"]) == ("scheduled", "success"), d.task_states("loop", train["dag_run_id"])
    assert scene.champion() == "1"
    assert scene.hook.messages() == []


def finished(d: Deployment, dag_id: str) -> list[dict[str, Any]]:
    """The DAG's runs, oldest first, once every one of them has finished, else []."""
    runs = d.runs(dag_id)
    return runs if runs and all(r["state"] in ("success", "failed") for r in runs) else []


def test_a_triggered_run_succeeds_closes_every_record_and_moves_the_champion(scene: Scene) -> None:
    d = scene.d
    d.unpause("loop")
    run_id = d.trigger("loop", {"fit.C": 0.5, "fit.bonus": 0.05})  # better than the first champion
    assert d.wait_run("loop", run_id, RUN) == "success", d.task_states("loop", run_id)
    records = scene.records("loop", run_id)
    assert {r.data.tags.get("nbops.stage", "pipeline") for r in records} == {"pipeline", "prepare", "fit"}
    assert {r.info.status for r in records} == {"FINISHED"}
    [fit] = scene.attempts("loop", run_id, "fit")
    assert fit.data.params["C"] == "0.5"
    [version] = scene.client.search_model_versions(f"name = '{MODEL}' and run_id = '{fit.info.run_id}'")
    assert scene.champion() == str(version.version)
    # The stage's notebook and the model's files went through MLflow's proxy to the S3 store.
    assert any(fit.info.run_id in k and k.endswith("output.ipynb") for k in d.s3.keys("mlflow/"))


def test_bad_conf_fails_before_any_stage_and_a_failing_stage_fails_the_run_both_alerting(scene: Scene) -> None:
    d = scene.d
    d.unpause("loop")
    misspelled = d.trigger("loop", {"fit.CC": 2.0})
    failing = d.trigger("loop", {"prepare.rows": -1})  # numpy refuses a negative size: the notebook fails
    assert d.wait_run("loop", misspelled, RUN) == "failed"
    assert d.wait_run("loop", failing, RUN) == "failed"
    states = d.task_states("loop", misspelled)
    assert states["check_conf"] == "failed" and states["prepare"] == "upstream_failed", states
    assert [r for r in scene.records("loop", misspelled) if "nbops.stage" in r.data.tags] == []
    states = d.task_states("loop", failing)
    assert states["prepare"] == "failed" and states["fit"] == "upstream_failed", states
    [attempt] = scene.attempts("loop", failing, "prepare")  # exit 1 is not retried
    assert attempt.info.status == "FAILED"
    for run_id in (misspelled, failing):
        scene.alerts_for(run_id)
    time.sleep(5)  # a second alert for the same run would have arrived by now
    for run_id, task in ((misspelled, "check_conf"), (failing, "prepare")):
        [alert] = scene.alerts_for(run_id)
        assert alert["type"] == "failure" and f"Failed task: {task}" in alert["message"], alert


def test_manual_approval_through_the_rest_api_approve_and_reject(scene: Scene) -> None:
    """Two runs of the gated pipeline wait at the approval: one approved (the champion moves, the
    approver is recorded), one rejected (nothing moves, recorded ``rejected``)."""
    d = scene.d
    d.unpause("gated")
    approved, rejected = d.trigger("gated"), d.trigger("gated", {"fit.bonus": 0.5})
    for run_id in (approved, rejected):
        d.wait_task("gated", run_id, "approve_champion", ("awaiting_input",), RUN)
    # A person reads the request first. An answer in the very second the task pauses fails it:
    # the scheduler then meets the pause's executor event for a task the answer already queued
    # again ("finished with state success, but the task instance's state attribute is queued").
    time.sleep(HUMAN)
    assert scene.champion(GATED_MODEL) is None
    d.respond("gated", approved, "approve_champion", "Approve")
    assert d.wait_run("gated", approved, RUN) == "success"
    d.respond("gated", rejected, "approve_champion", "Reject")
    assert d.wait_run("gated", rejected, RUN) == "success"
    assert d.task_states("gated", rejected)["promote_champion"] == "skipped"
    [winner] = scene.attempts("gated", approved, "fit")
    [version] = scene.client.search_model_versions(f"name = '{GATED_MODEL}' and run_id = '{winner.info.run_id}'")
    assert scene.champion(GATED_MODEL) == str(version.version)
    tags = dict(scene.client.get_model_version(GATED_MODEL, str(version.version)).tags)
    assert tags["nbops.gate.approved_by"] == "operator", tags
    [parent] = [r for r in scene.records("gated", rejected) if r.data.tags.get("nbops.kind") == "pipeline"]
    assert parent.data.tags["nbops.gate.decision"] == "rejected"
    assert not scene.open_records()


def test_drift_starts_the_training_dag_from_the_asset_and_that_run_trains_again(scene: Scene) -> None:
    d = scene.d
    d.unpause("loop_monitor")
    d.unpause("loop")
    before = len(scene.client.search_model_versions(f"name = '{MODEL}'"))
    monitor = d.trigger("loop_monitor", {"monitor.drift": 0.9})
    assert d.wait_run("loop_monitor", monitor, RUN) == "success", d.task_states("loop_monitor", monitor)
    retrain = wait_for(
        "the scheduler to start the training DAG from the drift asset",
        lambda: d.runs("loop", "asset_triggered"),
        bool,
        120,
        every=2,
    )
    run_id = retrain[0]["dag_run_id"]
    assert d.wait_run("loop", run_id, RUN) == "success", d.task_states("loop", run_id)
    stages = {r.data.tags["nbops.stage"]: r for r in scene.records("loop", run_id) if "nbops.stage" in r.data.tags}
    assert not any(r.data.tags.get("nbops.reused") for r in stages.values()), "the drift-triggered run reused a stage"
    assert len(scene.client.search_model_versions(f"name = '{MODEL}'")) == before + 1


def running(scene: Scene, pipeline: str, run_id: str, stage: str) -> psutil.Process:
    """The stage's process once its attempt is recorded RUNNING in MLflow and its kernel runs."""
    wait_for(
        f"attempt 1 of {stage} in {run_id} recorded RUNNING",
        lambda: [r.info.status for r in scene.attempts(pipeline, run_id, stage)],
        lambda statuses: statuses == ["RUNNING"],
        RUN,
    )
    found: psutil.Process = wait_for(
        f"the kernel of {stage} in {run_id}", lambda: _stage_process(run_id, stage), bool, RUN
    )
    return found


def _stage_process(run_id: str, stage: str) -> psutil.Process | None:
    """The running ``nbops exec-stage`` of ``stage`` in DAG run ``run_id``, once its kernel runs."""
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "exec-stage" in cmdline and run_id in cmdline and stage in cmdline:
            kernels = [c for c in descendants(proc.pid) if "ipykernel_launcher" in " ".join(c.cmdline())]
            return proc if kernels else None
    return None


def _kernels(d: Deployment) -> list[str]:
    """Kernels started under this deployment that still run (none should once its runs ended)."""
    return [c for c in d.strays(everything=True) if "ipykernel_launcher" in c]


def test_a_killed_stage_is_retried_and_a_task_marked_failed_records_killed(scene: Scene) -> None:
    """Mid-cell, one run's stage process gets SIGKILL: Airflow retries it, MLflow shows attempt 1
    ended and attempt 2 FINISHED, no kernel left. In another run a person marks the running task
    failed: the stage receives SIGTERM, archives its partial notebook and records KILLED."""
    d = scene.d
    d.unpause("loop")
    killed, marked = d.trigger("loop", {"prepare.pause": 30}), d.trigger("loop", {"prepare.pause": 300})
    victim = running(scene, "loop", killed, "prepare")
    running(scene, "loop", marked, "prepare")
    time.sleep(3)  # inside the sleeping cell
    victim.send_signal(signal.SIGKILL)
    d.set_task_state("loop", marked, "prepare", "failed")
    [attempt] = wait_for(
        "the marked run's prepare attempt recorded KILLED",
        lambda: [r for r in scene.attempts("loop", marked, "prepare") if r.info.status != "RUNNING"],
        bool,
        90,
    )
    assert attempt.info.status == "KILLED", attempt.info
    # The partial notebook as it stood, as .ipynb and .html; no manifest: a killed attempt is not sealed.
    names = [a.path for a in scene.client.list_artifacts(attempt.info.run_id)]
    assert names == ["output.html", "output.ipynb"], names
    assert d.wait_run("loop", marked, RUN) == "failed"
    assert d.wait_run("loop", killed, RUN) == "success", d.task_states("loop", killed)
    first, second = scene.attempts("loop", killed, "prepare")
    assert first.info.status in ("FAILED", "KILLED") and second.info.status == "FINISHED"
    assert d.tasks("loop", killed)["prepare"]["try_number"] == 2
    wait_for("no kernel left of either run", lambda: _kernels(d), lambda k: not k, 60)


def test_the_scheduler_killed_mid_stage_and_restarted_ends_the_run_and_closes_its_records(scene: Scene) -> None:
    d = scene.d
    d.unpause("loop")
    run_id = d.trigger("loop", {"prepare.pause": 31})  # not 30: the killed run's prepare would be reused
    running(scene, "loop", run_id, "prepare")
    # As a container runtime or systemd does when the scheduler dies: its whole process tree (the
    # LocalExecutor's workers and the task running the stage) goes with it, with no shutdown.
    d.kill("scheduler")
    time.sleep(5)
    d.spawn("scheduler")
    # The restarted scheduler resets the dead one's task; its retry runs the stage again.
    assert d.wait_run("loop", run_id, RUN + 300) == "success", d.task_states("loop", run_id)
    wait_for("every MLflow record closed", scene.open_records, lambda left: not left, 120)
    attempts = [a.info.status for a in scene.attempts("loop", run_id, "prepare")]
    assert attempts[0] in ("FAILED", "KILLED") and attempts[1:] == ["FINISHED"], attempts
    assert d.strays() == [] and _kernels(d) == []


def test_concurrent_runs_and_a_backfill_never_collide_and_two_gates_move_the_champion_once_each(scene: Scene) -> None:
    """Two runs at once whose challengers both beat the champion (0.1 and 0.2 added to the
    metric), beside a backfill of three dates: every run has its own records and run date; the
    gate re-reads the champion before moving it, so whichever order they apply in, the better
    challenger ends as champion and no decision was taken against a stale champion."""
    d = scene.d
    d.unpause("loop")
    better, best = d.trigger("loop", {"fit.bonus": 0.1}), d.trigger("loop", {"fit.bonus": 0.2})
    d.call("POST", "/backfills", {"dag_id": "loop", "from_date": "2026-11-01T00:00:00Z", "to_date": "2026-11-03T12:00:00Z", "max_active_runs": 3, "reprocess_behavior": "none", "run_backwards": False, "dag_run_conf": {}})  # fmt: skip
    backfilled = wait_for("the backfill's three runs", lambda: d.runs("loop", "backfill"), lambda r: len(r) == 3, 120)
    run_ids = [better, best, *(r["dag_run_id"] for r in backfilled)]
    states = wait_for(
        "five runs at once to finish",
        lambda: {run_id: d.run_state("loop", run_id) for run_id in run_ids},
        lambda states: all(s in ("success", "failed") for s in states.values()),
        RUN + 300,
        every=3,
    )
    assert set(states.values()) == {"success"}, {
        r: d.task_states("loop", r) for r, s in states.items() if s != "success"
    }
    parents = {}
    for run_id in run_ids:
        [parent] = [r for r in scene.records("loop", run_id) if r.data.tags.get("nbops.kind") == "pipeline"]
        parents[run_id] = parent
    assert len({p.info.run_id for p in parents.values()}) == 5
    dates = sorted(parents[r["dag_run_id"]].data.tags["nbops.run_date"] for r in backfilled)
    assert dates == ["2026-11-01", "2026-11-02", "2026-11-03"]
    [best_fit] = scene.attempts("loop", best, "fit")
    [version] = scene.client.search_model_versions(f"name = '{MODEL}' and run_id = '{best_fit.info.run_id}'")
    assert scene.champion() == str(version.version)
    # Whichever gate applied first, no decision stands against a champion that was gone: if both
    # promoted, the better one went first and the best one was compared with it.
    first, second = parents[better].data.tags, parents[best].data.tags
    assert second["nbops.gate.decision"] == "promoted"
    if first["nbops.gate.decision"] == "promoted":
        assert second["nbops.gate.champion_version"] == first["nbops.gate.version"], (first, second)
    else:  # the best one went first; the better one was decided again against it, and kept
        assert first["nbops.gate.champion_version"] == second["nbops.gate.version"], (first, second)


def test_nothing_stays_running_and_nothing_is_left_behind(scene: Scene) -> None:
    d = scene.d
    for dag_id in ("loop", "loop_monitor", "gated"):  # no run of the clock's may start now
        d.unpause(dag_id, paused=True)
    wait_for(
        "no DAG run active",
        lambda: d.call("GET", "/dags/~/dagRuns?state=running&state=queued")["total_entries"],
        lambda active: active == 0,
        RUN,
    )
    assert scene.open_records() == []
    leftovers = scene.d.stop()
    assert leftovers == [], leftovers
    ports = (d.api_port, d.mlflow_port, d.pg.port, *d.log_ports)
    listening = [c.laddr for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port in ports]
    assert listening == []
    assert scene.d.strays(everything=True) == []
