"""The generated DAG as Airflow sees it: it imports cleanly, reads only its lock, and carries
typed Params, docs, schedule and wiring from the spec, the retraining gate and its approval."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.airflow.conftest import AIRFLOW_HOME, dagbag
from tests.conftest import ROOT, Project, example_project

pytestmark = pytest.mark.integration


def test_dagbag_of_the_repository_has_no_import_errors() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags"))
    assert bag.import_errors == {}
    assert set(bag.dags) == {"diagnosis", "diagnosis_monitor"}
    dag = bag.dags["diagnosis"]
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.timetable.timetable.expression == "0 2 * * *"  # or the drift asset
    assert dag.timetable.asset_condition.uri == "nbops://diagnosis/drift"
    assert dag.start_date.year == 2026 and dag.start_date.month == 1
    assert "nbops" in dag.tags
    stages = ["evaluate", "ingest", "optimize", "prepare", "train", "transform"]
    assert {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks} == {
        "check_conf": [],
        "ingest": ["check_conf"],
        "transform": ["ingest"],
        "prepare": ["transform"],
        "train": ["prepare"],
        "optimize": ["prepare", "train"],
        "evaluate": ["optimize", "prepare"],
        "retrain_gate": ["evaluate"],
        "close_run": sorted([*stages, "retrain_gate"]),
        "stages_succeeded": sorted([*stages, "retrain_gate"]),
    }
    close = dag.get_task("close_run")
    assert close.is_teardown and close.on_failure_fail_dagrun and close.trigger_rule == "all_done_setup_success"
    assert "| optimize | `notebooks/optimize.ipynb` |" in dag.doc_md
    monitor = bag.dags["diagnosis_monitor"]
    assert monitor.timetable.expression == "0 0 * * *"
    assert [t.task_id for t in monitor.tasks] == [
        "check_conf",
        "monitor",
        "drift_trigger",
        "close_run",
        "stages_succeeded",
    ]


def test_committed_dag_is_what_promote_writes_today(tmp_path: Path) -> None:
    """A notebook edited without promoting again shows up here as a stale DAG.

    The copy is not a git checkout, so its lock names no commit: that field alone may differ.
    """
    project = example_project(tmp_path)
    shutil.copytree(ROOT / "dags", tmp_path / "dags")
    result = project.nbops("promote", "pipeline.yaml")
    assert result.returncode == 0, result.stderr
    committed, today = (json.loads((d / "dags" / "diagnosis.lock.json").read_text()) for d in (ROOT, tmp_path))
    assert today["git_commit"] == "unknown"
    for lock in (committed, today):
        lock.pop("git_commit"), lock.pop("git_dirty")
    assert committed == today, result.stdout
    assert sorted(p.name for p in (ROOT / "dags").glob("*.py")) == sorted(
        p.name for p in (tmp_path / "dags").glob("*.py")
    )
    for dag_file in (tmp_path / "dags").glob("*.py"):
        assert (ROOT / "dags" / dag_file.name).read_bytes() == dag_file.read_bytes(), dag_file.name


def test_params_are_typed_from_the_notebooks() -> None:
    from airflow.dag_processing.dagbag import DagBag

    params = DagBag(str(ROOT / "dags")).dags["diagnosis"].params
    schema = {key: params.get_param(key).schema for key in params}
    assert schema["ingest.batch_size"]["type"] == "integer"
    assert schema["ingest.as_of"]["type"] == "string"
    assert schema["prepare.test_size"]["type"] == "number"
    assert schema["transform.log_features"]["type"] == "array"
    assert schema["ingest.batch_size"]["section"] == "Stage ingest"
    assert schema["ingest.batch_size"]["title"] == "batch_size"
    assert params["ingest.batch_size"] == 3000  # pipeline.yaml overrides the notebook's default
    assert params.get_param("ingest.batch_size").description  # the notebook's trailing comment


def test_wrong_conf_type_is_rejected_by_the_params(tmp_path: Path) -> None:
    import copy

    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    params: ParamsDict = copy.deepcopy(DagBag(str(ROOT / "dags")).dags["diagnosis"].params)
    params["optimize.n_iter"] = 5
    assert params.validate()["optimize.n_iter"] == 5
    with pytest.raises(ParamValidationError, match=r"optimize\.n_iter"):
        params["optimize.n_iter"] = "five"
        params.validate()


AUDIT = r"""
import runpy, sys
# What any DAG file with pod tasks and a cron schedule imports (croniter runs `file` on import).
from airflow.sdk import DAG  # noqa: F401
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator  # noqa: F401
import croniter  # noqa: F401
import nbops.airflow  # noqa: F401
opened = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)):
        opened.append(str(args[0]))
    if event in ("socket.connect", "subprocess.Popen", "os.system"):
        opened.append(f"{event}:{args[:2]}")
sys.addaudithook(hook)
runpy.run_path(sys.argv[1])
print("\n".join(opened))
"""


def test_parsing_the_dag_file_reads_only_the_lock() -> None:
    dag_file = ROOT / "dags" / "diagnosis.py"
    env = {"AIRFLOW_HOME": str(AIRFLOW_HOME), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", AUDIT, str(dag_file)], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    opened = {line for line in result.stdout.splitlines() if line}
    others = {p for p in opened if not p.endswith((".py", ".pyc")) and "site-packages" not in p}
    assert others == {str(ROOT / "dags" / "diagnosis.lock.json")}, opened
    assert not any(":" in p and p.startswith(("socket", "subprocess", "os.system")) for p in opened)


def test_backend_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbops.airflow.settings import SettingError, backend

    monkeypatch.setenv("NBOPS_BACKEND", "LOCAL")
    assert backend() == "local"
    monkeypatch.setenv("NBOPS_BACKEND", "docker")
    with pytest.raises(SettingError, match="NBOPS_BACKEND='docker'"):
        backend()
    monkeypatch.delenv("NBOPS_BACKEND")
    monkeypatch.setenv("AIRFLOW_VAR_NBOPS_BACKEND", "local")  # an Airflow Variable from the environment
    assert backend() == "local"


def test_the_gate_follows_its_stage_and_the_approval_sits_between_gate_and_promotion(loop_manual: Project) -> None:
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    dag = dagbag(loop_manual.root / "dags")["loop"]
    stages = ["fit", "prepare", "report"]
    assert {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks} == {
        "check_conf": [],
        "prepare": ["check_conf"],
        "fit": ["prepare"],
        "report": ["fit"],
        "retrain_gate": ["fit"],
        "approve_champion": ["retrain_gate"],
        "promote_champion": ["approve_champion"],
        "close_run": sorted([*stages, "approve_champion", "promote_champion", "retrain_gate"]),
        # The approval reaches the outcome through promote_champion, so a Reject cannot skip it.
        "stages_succeeded": sorted([*stages, "promote_champion", "retrain_gate"]),
    }
    close, outcome = dag.get_task("close_run"), dag.get_task("stages_succeeded")
    assert close.is_teardown and close.on_failure_fail_dagrun
    assert outcome.trigger_rule == "none_failed"
    approve = dag.get_task("approve_champion")
    assert isinstance(approve, ApprovalOperator)
    assert approve.defaults == ["Reject"] and approve.response_timeout.days == 7 and approve.retries == 0
    assert not approve.fail_on_reject and not approve.ignore_downstream_trigger_rules
    for task_id in ("retrain_gate", "promote_champion"):
        assert dag.get_task(task_id).retries == 3
    assert "retrain_gate" in dag.doc_md and "nbops.gate.*" in dag.doc_md and "approve_champion" in dag.doc_md
    assert "accuracy" in dag.get_task("retrain_gate").doc_md


def test_an_automatic_gate_has_no_approval(loop_auto: Project) -> None:
    dag = dagbag(loop_auto.root / "dags")["auto"]
    upstream = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
    assert upstream["retrain_gate"] == ["fit"]
    assert "approve_champion" not in upstream and "promote_champion" not in upstream
    assert upstream["close_run"] == upstream["stages_succeeded"] == ["fit", "prepare", "retrain_gate"]
    assert "moves the alias itself" in dag.doc_md


def test_with_a_monitor_the_training_dag_runs_on_its_cron_or_on_drift(loop_manual: Project, loop_auto: Project) -> None:
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable
    from airflow.timetables.assets import AssetTriggeredTimetable  # noqa: F401 - the kind compared below

    dags = dagbag(loop_manual.root / "dags")
    schedule = dags["loop"].timetable
    assert isinstance(schedule, AssetOrTimeSchedule)
    assert isinstance(schedule.timetable, CronTriggerTimetable) and schedule.timetable.expression == "0 0 * * *"
    assert schedule.asset_condition.uri == "nbops://loop/drift"
    assert schedule.asset_condition == dags["loop_monitor"].get_task("drift_trigger").outlets[0]
    assert "whenever the drift monitor" in dags["loop"].doc_md
    only_drift = dagbag(loop_auto.root / "dags")["auto"].timetable
    assert type(only_drift).__name__ == "AssetTriggeredTimetable"
    assert only_drift.asset_condition.uri == "nbops://auto/drift"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("schedule", "kind", "expression"),
    [("@daily", "CronTriggerTimetable", "0 0 * * *"), ("@weekly", "CronTriggerTimetable", "0 0 * * 0"),
     ("30 2 * * 1-5", "CronTriggerTimetable", "30 2 * * 1-5"), ("@once", "OnceTimetable", None)],
)  # fmt: skip
def test_schedule_strings_become_the_timetables_airflow_makes(schedule: str, kind: str, expression: str | None) -> None:
    from nbops.airflow.dag import timetable

    made = timetable(schedule)
    assert type(made).__name__ == kind
    assert getattr(made, "expression", None) == expression


@pytest.mark.unit
def test_spec_text_in_the_approval_request_is_shown_verbatim() -> None:
    from airflow.sdk import DAG

    from nbops.airflow.dag import literal

    nasty = "m{{ 7 * 6 }} {% raw %}x{% endraw %} \"q\" 'q' \\ \n é 🙂 }}"
    template = DAG(dag_id="t").get_template_env().from_string(literal(nasty) + "{{ run_id }}")
    assert template.render(run_id="r1") == nasty + "r1"


def test_the_approval_request_names_the_model_the_rule_and_the_record(loop_manual: Project) -> None:
    from tests.airflow.conftest import SCHEDULED_RUN_ID

    task = dagbag(loop_manual.root / "dags")["loop"].get_task("approve_champion")
    task.render_template_fields({"run_id": SCHEDULED_RUN_ID}, jinja_env=task.dag.get_template_env())
    assert task.subject == "Make the new version of model loop-model its champion?"
    assert "`accuracy` must be higher than the champion's by more than 0 (maximize)" in task.body
    assert f"`nbops.gate.*` on the pipeline run (experiment loop, tag `nbops.run_id` = `{SCHEDULED_RUN_ID}`)" in (
        task.body
    )
    assert "**Reject**: the champion stays" in task.body and "7 days" in task.body


PARSE_AUDIT = AUDIT.replace(
    'print("\\n".join(opened))',
    'print("\\n".join(opened))\nprint("loaded:", " ".join(sorted(m for m in sys.modules if m.startswith("nbops."))))',
)


@pytest.mark.parametrize("dag_file", ["loop.py", "loop_monitor.py"])
def test_parsing_the_loop_dag_files_reads_only_the_lock_and_no_spec_model(loop_manual: Project, dag_file: str) -> None:
    dags = loop_manual.root / "dags"
    env = {"AIRFLOW_HOME": str(AIRFLOW_HOME), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", PARSE_AUDIT, str(dags / dag_file)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    loaded = next(line for line in lines if line.startswith("loaded:")).split()[1:]
    opened = {line for line in lines if line and not line.startswith("loaded:")}
    others = {p for p in opened if not p.endswith((".py", ".pyc")) and "site-packages" not in p}
    assert others == {str(dags / "loop.lock.json")}, opened
    assert not {"nbops.spec", "nbops.lock", "nbops.alerts", "nbops.retrain", "nbops.monitor"} & set(loaded), loaded
