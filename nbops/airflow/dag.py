"""Build the Airflow DAG of a promoted pipeline from its lock (and from nothing else).

The lock was validated when it was written; here it is read as plain JSON so that parsing
a DAG file costs little more than the operators it creates (see benchmarks/dag_parse.py).
The monitor DAG of the same lock is built in :mod:`nbops.airflow.monitor`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, BaseOperator

from nbops.airflow import conf
from nbops.airflow.notify import failure_notifier
from nbops.airflow.operator import NbopsStageOperator
from nbops.airflow.params import dag_params, locked_stage, stage_defaults, swept_conf, type_label
from nbops.airflow.pod import close_arguments, gate_arguments, pod_arguments, points_arguments, promote_arguments
from nbops.airflow.settings import settings_macro
from nbops.graph import APPROVE_TASK, OUTCOME_TASK, topological_order
from nbops.sweep import Point, grid_points, list_points

# Fixed so that the DAG's identity never depends on when it was parsed; catchup is off.
START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
LOCK_VERSION = 1
APPROVAL_TIMEOUT = timedelta(days=7)
"""How long the approval waits for a person; then it counts as Reject (the champion stays), so an
unanswered request does not hold back the pipeline's next runs for ever."""


CLOSE_DOC = (
    "Closes the pipeline run's MLflow record once every stage is done, whatever happened: archives the spec, "
    "the lock and the notebooks' index, records this DAG run (dag id, run id, logical date, conf) and ends the "
    "run FINISHED, FAILED or KILLED as its stages did. It never changes the DAG run's state unless the record "
    "itself cannot be written."
)


OUTCOME_DOC = (
    "Succeeds when every task before it succeeded or was skipped (a rejected approval skips "
    "`promote_champion`) and fails (upstream_failed) otherwise, so that the DAG run's state is the stages' "
    "own; `close_run` fails the run only when the record itself cannot be written."
)


class LockFormatError(ValueError):
    """The lock beside a DAG file is not one this nbops wrote."""


def dag_from_lock(path: Path) -> DAG:
    """The DAG of the pipeline frozen in the lock file at ``path``."""
    return load(path, build_dag)


def load(path: Path, build: Callable[[dict[str, Any], str, Path], DAG]) -> DAG:
    """``build(lock, lock sha256, project dir)`` for the lock file at ``path``; LockFormatError
    naming the file when it is not a lock this nbops can build from."""
    raw = path.read_bytes()
    try:
        lock = json.loads(raw)
        if lock.get("lock_version") != LOCK_VERSION:
            raise LockFormatError(f"lock_version {lock.get('lock_version')!r}, expected {LOCK_VERSION}")
        return build(lock, hashlib.sha256(raw).hexdigest(), (path.parent / lock["pipeline_file"]).parent)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LockFormatError(
            f"{path}: not a lock this nbops can build a DAG from ({type(exc).__name__}: {exc}). "
            "Run `nbops promote` again with the nbops version installed in Airflow."
        ) from exc


def new_dag(lock: dict[str, Any], project_dir: Path, **kwargs: Any) -> DAG:
    """A DAG with what both of a pipeline's DAGs share: start date, tags, settings macro, failure alert."""
    spec = lock["spec"]
    return DAG(
        start_date=START_DATE,
        catchup=False,
        user_defined_macros={"nbops_setting": settings_macro(project_dir, spec["kubernetes"]["artifacts_claim"])},
        on_failure_callback=failure_notifier(lock),
        **kwargs,
    )


def check_task(dag: DAG, swept: dict[str, str] | None = None) -> PythonOperator:
    """The DAG's first task: the trigger conf checked whole against the DAG's params."""
    return PythonOperator(
        task_id=conf.TASK_ID,
        dag=dag,
        doc_md=conf.DOC,
        python_callable=conf.check_conf,
        op_kwargs={"valid": sorted(dag.params), **({"swept": swept} if swept else {})},
        retries=0,
    )


def finish(
    dag: DAG, close: NbopsStageOperator, everything: Sequence[BaseOperator], outcome: Sequence[BaseOperator], doc: str
) -> None:
    """Close the record after ``everything``, whatever happened, and carry ``outcome``'s into the DAG run.

    A teardown that can fail the run is the only leaf Airflow would look at, so
    `stages_succeeded`, a leaf of its own that fails when a task before it did, carries the
    outcome into the DAG run's state. It accepts skipped tasks: a rejected approval, a monitor
    run whose trigger did not hold.
    """
    list(everything) >> close
    close.as_teardown(on_failure_fail_dagrun=True)
    list(outcome) >> EmptyOperator(task_id=OUTCOME_TASK, dag=dag, doc_md=doc, trigger_rule="none_failed")


def build_dag(lock: dict[str, Any], lock_sha256: str, project_dir: Path) -> DAG:
    """One task per stage, wired by ``needs``, after the conf check and before closing the record;
    the retraining gate (and its approval) after the stage that registers the model."""
    spec = lock["spec"]
    dag = new_dag(
        lock,
        project_dir,
        dag_id=spec["name"],
        description=spec["description"] or None,
        schedule=training_schedule(spec),
        max_active_runs=spec["airflow"]["max_active_runs"],
        tags=["nbops", *spec["airflow"]["tags"]],
        doc_md=doc_md(lock, lock_sha256),
        params=dag_params(lock),
    )
    check = check_task(dag, swept_conf(lock))
    tasks: dict[str, Any] = {}
    listing: list[BaseOperator] = []
    for name in stage_order(lock):
        task, lists = stage_task(dag, lock, lock_sha256, name)
        for upstream in lock["stages"][name]["settings"]["needs"]:
            tasks[upstream] >> [task, *lists]
        if not lock["stages"][name]["settings"]["needs"]:
            check >> task
        tasks[name] = task
        listing += lists
    retraining = retrain_tasks(dag, lock, lock_sha256, tasks)
    close = NbopsStageOperator(dag=dag, doc_md=CLOSE_DOC, **close_arguments(lock, lock_sha256))
    # The approval reaches the outcome through promote_champion: a direct link would let a
    # Reject skip the outcome itself.
    outcome = [*tasks.values(), *listing, *(t for t in retraining if t.task_id != APPROVE_TASK)]
    finish(dag, close, [*tasks.values(), *listing, *retraining], outcome, OUTCOME_DOC)
    return dag


def stage_task(dag: DAG, lock: dict[str, Any], lock_sha256: str, name: str) -> tuple[Any, list[BaseOperator]]:
    """A stage's task (and the task listing its points, for ``foreach_from``): one pod; for a swept
    stage a mapped task, one pod per point, whose map index is the point's index (``--point {{
    ti.map_index }}``) and whose pods are named per point; ``max_parallel`` is its concurrency
    within a DAG run. ``grid`` and ``foreach`` points are expanded from the lock;
    ``foreach_from`` ones from the ``<stage>_points`` task's list, read when the upstream is done."""
    arguments = pod_arguments(lock, lock_sha256, name)
    settings = lock["stages"][name]["settings"]
    if not (settings.get("grid") or settings.get("foreach") or settings.get("foreach_from")):
        return NbopsStageOperator(dag=dag, doc_md=stage_doc(lock, name), **arguments), []
    pod_name = arguments.pop("name")
    arguments["arguments"] = [*arguments["arguments"], "--point", "{{ ti.map_index }}"]
    points = locked_points(settings)
    count = f"{len(points)} points" if points is not None else "points listed at run time by `" + name + "_points`"
    mapped = NbopsStageOperator.partial(
        dag=dag,
        doc_md=stage_doc(lock, name) + f"\n\nSwept: one mapped task instance per point ({count}).",
        max_active_tis_per_dagrun=settings.get("max_parallel"),
        **arguments,
    )
    if points is not None:
        return mapped.expand(name=[f"{pod_name}-{p.index}" for p in points]), []
    lister = NbopsStageOperator(
        dag=dag,
        doc_md=f"Lists the points of stage `{name}` from `{settings['foreach_from']['file']}`, written by stage "
        f"`{settings['foreach_from']['stage']}`; fails (exit 2) when the list is missing or a point is refused.",
        **points_arguments(lock, lock_sha256, name, pod_name),
    )
    return mapped.expand(name=lister.output), [lister]


def locked_points(settings: dict[str, Any]) -> list[Point] | None:
    """The points a locked stage's ``grid`` or ``foreach`` lists (None: not swept that way)."""
    if settings.get("grid"):
        return grid_points(settings["grid"])
    if settings.get("foreach"):
        return list_points(settings["foreach"])
    return None


def retrain_tasks(dag: DAG, lock: dict[str, Any], lock_sha256: str, stages: dict[str, Any]) -> list[BaseOperator]:
    """``retrain_gate`` after the stage ``retrain.stage``; with manual approval, then
    ``approve_champion`` (a person's Approve or Reject in Airflow) and ``promote_champion``."""
    retrain = lock["spec"].get("retrain")
    if retrain is None:
        return []
    gate = NbopsStageOperator(dag=dag, doc_md=gate_doc(retrain), **gate_arguments(lock, lock_sha256))
    stages[retrain["stage"]] >> gate
    if retrain["approval"] != "manual":
        return [gate]
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    approve = ApprovalOperator(
        task_id=APPROVE_TASK,
        dag=dag,
        doc_md=APPROVE_DOC,
        subject=literal(f"Make the new version of model {retrain['model']} its champion?"),
        body=approval_body(lock["spec"]["name"], retrain),
        defaults=ApprovalOperator.REJECT,
        response_timeout=APPROVAL_TIMEOUT,
        retries=0,
    )
    promote = NbopsStageOperator(dag=dag, doc_md=PROMOTE_DOC, **promote_arguments(lock, lock_sha256))
    gate >> approve >> promote
    return [gate, approve, promote]


def literal(text: str) -> str:
    """A template that renders as ``text`` verbatim: a Jinja string literal, so that braces in a
    model or metric name are shown, never evaluated."""
    return "{{ " + json.dumps(text, ensure_ascii=False) + " }}"


def rule(retrain: dict[str, Any]) -> str:
    """The gate's rule in words."""
    better = "higher" if retrain["direction"] == "maximize" else "lower"
    return (
        f"the challenger's `{retrain['metric']}` must be {better} than the champion's by more than "
        f"{retrain['min_improvement']:g} ({retrain['direction']})"
    )


APPROVE_DOC = (
    "Asks a person to approve the retraining gate's decision (`approval: manual`). Approve: `promote_champion` "
    f"moves the `champion` alias. Reject, or no answer within {APPROVAL_TIMEOUT.days} days: the champion stays "
    "and `promote_champion` is skipped."
)
PROMOTE_DOC = (
    "Applies the approval given in `approve_champion` (`nbops approve`): moves `champion` to the challenger "
    "when the gate's decision awaits approval, and records who approved; does nothing when the gate kept "
    "the champion."
)


def approval_body(pipeline: str, retrain: dict[str, Any]) -> str:
    """The approval request (Markdown): what is asked, the rule, where the decision is recorded."""
    head = (
        f"The retraining gate of pipeline {pipeline} compared the version of model {retrain['model']} that stage "
        f"{retrain['stage']} registered in this DAG run with the champion. Rule: {rule(retrain)}.\n\n"
        "The gate's decision (awaiting approval, or kept when the challenger did not win), both metric values "
        "and the margin are recorded in MLflow as tags `nbops.gate.*` on the pipeline run (experiment "
        f"{pipeline}, tag `nbops.run_id` = `"
    )
    tail = (
        "`) and on the model version.\n\n"
        "- **Approve**: `promote_champion` moves the `champion` alias to the new version, when the gate's "
        "decision awaits approval.\n"
        "- **Reject**: the champion stays; `promote_champion` is skipped. No answer within "
        f"{APPROVAL_TIMEOUT.days} days counts as Reject."
    )
    return literal(head) + "{{ run_id }}" + literal(tail)


def gate_doc(retrain: dict[str, Any]) -> str:
    """The gate task's documentation."""
    then = (
        "Records its decision awaiting approval; `approve_champion` asks a person."
        if retrain["approval"] == "manual"
        else "Moves the `champion` alias when the challenger wins."
    )
    return (
        f"The retraining gate (`nbops gate`): the version of `{retrain['model']}` that stage `{retrain['stage']}` "
        f"registered in this run against the champion; {rule(retrain)}. {then} The decision is recorded in MLflow "
        "as tags `nbops.gate.*` on the pipeline run and the model version. Fails (not retried) when it cannot "
        "decide: the stage registered no version, or a metric is missing."
    )


def drift_asset(pipeline: str) -> Any:
    """The Asset the monitor DAG emits when its trigger holds, and the training DAG is scheduled on."""
    from airflow.sdk import Asset

    return Asset(name=f"{pipeline}_drift", uri=f"nbops://{pipeline}/drift")


def training_schedule(spec: dict[str, Any]) -> Any:
    """The spec's schedule; with a monitor, the drift asset too (either one starts a run)."""
    if spec.get("monitor") is None:
        return spec["schedule"]
    asset = drift_asset(spec["name"])
    if spec["schedule"] is None:
        return asset
    from airflow.sdk import AssetOrTimeSchedule

    return AssetOrTimeSchedule(timetable=timetable(spec["schedule"]), assets=asset)


def timetable(schedule: str) -> Any:
    """The timetable Airflow makes of a ``schedule`` string (a cron expression or a preset)."""
    from airflow.sdk import CronTriggerTimetable
    from airflow.sdk.definitions.timetables.simple import ContinuousTimetable, OnceTimetable

    if schedule == "@once":
        return OnceTimetable()
    if schedule == "@continuous":
        return ContinuousTimetable()
    return CronTriggerTimetable(schedule, timezone="UTC")


def stage_order(lock: dict[str, Any]) -> list[str]:
    """Stages upstream first."""
    return topological_order({name: s["settings"]["needs"] for name, s in lock["stages"].items()})


def doc_md(lock: dict[str, Any], lock_sha256: str) -> str:
    """The DAG's documentation: what was promoted, a table of its stages, the gate and the schedule."""
    spec = lock["spec"]
    lines = [
        f"# {spec['name']}",
        "",
        spec["description"],
        "",
        promoted_line(lock, lock_sha256),
        "",
        "| stage | notebook | sha256 | needs | image | cpu / memory / gpu | retries | timeout (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in stage_order(lock):
        locked = lock["stages"][name]
        stage = locked["settings"]
        res = stage["resources"]
        lines.append(
            f"| {name} | `{locked['notebook']}` | `{locked['sha256'][:12]}` | {', '.join(stage['needs']) or '-'} | "
            f"`{stage['image']}` | {res.get('cpu') or '-'} / {res.get('memory') or '-'} / {res.get('gpu') or 0} | "
            f"{stage['retries']} | {stage['timeout']} |"
        )
    lines += ["", "Parameters appear in the trigger form as `<stage>.<name>`, typed by each notebook."]
    retrain = spec.get("retrain")
    if retrain is not None:
        approval = (
            "a person approves in `approve_champion` before `promote_champion` moves the alias"
            if retrain["approval"] == "manual"
            else "the gate moves the alias itself"
        )
        lines += [
            "",
            f"**Retraining gate.** After `{retrain['stage']}`, `retrain_gate` judges the new version of model "
            f"`{retrain['model']}` against its champion: {rule(retrain)}; {approval}. The decision is recorded as "
            "MLflow tags `nbops.gate.*` on the pipeline run and the model version.",
        ]
    if spec.get("monitor") is not None:
        when = f"on `{spec['schedule']}` and " if spec["schedule"] else ""
        lines += [
            "",
            f"**Schedule.** Runs {when}whenever the drift monitor (DAG `{spec['name']}_monitor`) emits the asset "
            f"`nbops://{spec['name']}/drift`. A run the asset starts has no logical date: its run date "
            "(`${run_date}`) is the day the drift was reported (the run's run-after date).",
        ]
    return "\n".join(lines)


def promoted_line(lock: dict[str, Any], lock_sha256: str) -> str:
    """Where a DAG comes from, and how to change it."""
    return (
        f"Promoted by nbops {lock['nbops_version']} from `{lock['pipeline_file']}` "
        f"(spec sha256 `{lock['spec_sha256'][:12]}`, lock sha256 `{lock_sha256[:12]}`). "
        "Do not edit the DAG file: change the pipeline and run `nbops promote` again."
    )


def stage_doc(lock: dict[str, Any], stage: str) -> str:
    """A task's documentation: its notebook and parameters."""
    locked = locked_stage(lock, stage)
    defaults = stage_defaults(lock, stage)
    rows = [
        f"| `{p['name']}` | {type_label(p)} | `{defaults[p['name']]!r}` | {p.get('help', '')} |"
        for p in locked["parameters"]
    ]
    table = ["| parameter | type | default | help |", "|---|---|---|---|", *rows] if rows else ["No parameters."]
    return "\n".join([f"Notebook `{locked['notebook']}` (sha256 `{locked['sha256']}`).", "", *table])
