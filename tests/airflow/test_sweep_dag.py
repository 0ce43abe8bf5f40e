"""A swept stage on Airflow (DESIGN §17): a mapped task, one pod per point labelled with its map
index and validated strictly; the trigger form and ``check_conf`` know the swept parameters; a
``foreach_from`` stage expands over the list its ``<stage>_points`` task reads; and ``airflow dags
test`` leaves the same records per point as ``nbops run``."""

from __future__ import annotations

import json
import re
from typing import Any

import kubernetes_validate
import pytest

from nbops.sweep import point_id
from tests.airflow.conftest import SCHEDULED_RUN_ID, dagbag, lock_sha256, render, serialize
from tests.airflow.test_dags_test import airflow
from tests.airflow.test_pod import K8S_VERSION
from tests.conftest import Project
from tests.sweeps import GRID, point_runs, score, sweep_project

pytestmark = pytest.mark.integration

POINTS = [{"C": c, "penalty": p} for c in GRID["C"] for p in GRID["penalty"]]


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = sweep_project(Project(tmp_path_factory.mktemp("sweep-grid")), sweep={"grid": GRID, "max_parallel": 2})
    promoted = project.nbops("promote", "pipeline.yaml")
    assert promoted.returncode == 0, promoted.stderr
    return project


@pytest.fixture(scope="module")
def fanned(tmp_path_factory: pytest.TempPathFactory) -> Project:
    sweep = {"foreach_from": {"stage": "prep", "file": "sets.json"}}
    project = sweep_project(Project(tmp_path_factory.mktemp("sweep-from")), sweep=sweep)
    promoted = project.nbops("promote", "pipeline.yaml")
    assert promoted.returncode == 0, promoted.stderr
    return project


def test_a_grid_stage_is_a_mapped_task_with_one_strictly_valid_pod_per_point(grid: Project) -> None:
    dag = dagbag(grid.root / "dags")["sweep"]
    train = dag.get_task("train")
    assert type(train).__name__ == "MappedOperator"
    assert train.partial_kwargs["max_active_tis_per_dagrun"] == 2
    names = train.expand_input.value["name"]
    assert names == [f"sweep-train-{i}" for i in range(6)]
    assert "train" in dag.get_task("prep").downstream_task_ids and "pick" in train.downstream_task_ids
    lock_sha = lock_sha256(grid, "sweep")
    for index, name in enumerate(names):
        pod = serialize(render(train.unmap({"name": name}), map_index=index))
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
        container, meta = pod["spec"]["containers"][0], pod["metadata"]
        assert meta["labels"]["map_index"] == str(index) and meta["labels"]["nbops.io/stage"] == "train"
        assert meta["name"].startswith(f"sweep-train-{index}")
        args = container["args"]
        assert args[:7] == ["exec-stage", "--promoted", lock_sha, "--stage", "train", "--run-id", SCHEDULED_RUN_ID]
        assert args[-2:] == ["--point", str(index)]
        assert json.loads(args[8]) == {}  # both parameters are swept: each point sets them


def test_the_trigger_form_leaves_out_swept_parameters_and_check_conf_refuses_them(grid: Project) -> None:
    from nbops.airflow.conf import conf_problems

    dag = dagbag(grid.root / "dags")["sweep"]
    assert not any(key.startswith("train.") for key in dag.params)
    check = dag.get_task("check_conf")
    problems = conf_problems({"train.C": 3.0}, check.op_kwargs["valid"], check.op_kwargs["swept"])
    assert problems == [
        "conf key 'train.C' is swept by stages.train.grid: each point sets it; change the sweep and promote again"
    ]


def test_a_foreach_from_stage_expands_over_the_list_its_points_task_reads(fanned: Project) -> None:
    dag = dagbag(fanned.root / "dags")["sweep"]
    lister, train = dag.get_task("train_points"), dag.get_task("train")
    assert lister.do_xcom_push is True
    assert set(lister.upstream_task_ids) == {"prep"} and "train_points" in train.upstream_task_ids
    pod = serialize(render(lister))
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    args = pod["spec"]["containers"][0]["args"]
    assert args[:2] == ["sweep-points", "--promoted"] and args[-2:] == ["--pod-name", "sweep-train"]


@pytest.mark.slow
def test_dags_test_runs_every_point_and_records_them_as_nbops_run_does(grid: Project) -> None:
    migrated = airflow(grid, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    tested = airflow(grid, "dags", "test", "sweep")
    output = tested.stdout + tested.stderr
    assert re.search(r"DagRun Finished: dag_id=sweep, .* state=success,", output), output[-5000:]
    local = grid.nbops("run", "pipeline.yaml", "--force", "*")
    assert local.returncode == 0, local.stderr
    parents = [r for r in grid.runs("sweep") if r.data.tags.get("nbops.kind") == "pipeline"]
    trigger = {p.info.run_id: p.data.tags["nbops.trigger"] for p in parents}
    by_run: dict[str, list[Any]] = {}
    for run in point_runs(grid):
        by_run.setdefault(trigger[run.data.tags["mlflow.parentRunId"]], []).append(run)
    assert set(by_run) == {"airflow", "nbops run"}

    def record(run: Any) -> tuple[Any, ...]:
        t = run.data.tags
        return (
            t["nbops.point"],
            t["nbops.point_id"],
            t["nbops.point_label"],
            dict(run.data.params),
            dict(run.data.metrics),
            t["nbops.status"],
            run.info.status,
            run.info.run_name,
        )

    assert [record(r) for r in by_run["airflow"]] == [record(r) for r in by_run["nbops run"]]
    assert [r.data.tags["nbops.point_id"] for r in by_run["airflow"]] == [point_id(p) for p in POINTS]
    assert [r.data.metrics["score"] for r in by_run["airflow"]] == [score(p["C"], p["penalty"]) for p in POINTS]
    for parent in parents:
        assert parent.info.status == "FINISHED"
        listed = [a.path for a in grid.client().list_artifacts(parent.info.run_id, "sweeps")]
        assert listed == ["sweeps/train.csv", "sweeps/train.html"]


@pytest.mark.slow
def test_dags_test_fans_out_what_the_upstream_stage_wrote(fanned: Project) -> None:
    assert airflow(fanned, "db", "migrate").returncode == 0
    tested = airflow(fanned, "dags", "test", "sweep")
    output = tested.stdout + tested.stderr
    assert re.search(r"DagRun Finished: dag_id=sweep, .* state=success,", output), output[-5000:]
    runs = point_runs(fanned)
    assert [r.data.tags["nbops.point_label"] for r in runs] == ["train[0] C=0.5", "train[1] C=2.0 penalty=l1"]
    assert "nbops sweep-points: stage 'train' sweeps 2 point(s)" in output
