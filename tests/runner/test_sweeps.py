"""Sweeps under ``nbops run`` (DESIGN §17): one attempt and one MLflow run per point, downstream
stages see every point, a leaderboard on the pipeline run, the gate judges the best point, a
widened grid runs only its new points, a failed point fails the stage after the others finish and
re-runs alone on resume, ``foreach_from`` fans out at run time, ``nbops test`` runs the first point."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import yaml

from nbops.storage.manifest import read_manifest
from nbops.sweep import point_id
from tests.conftest import Project, read_json
from tests.sweeps import GRID, MODEL, point_runs, score, sweep_project

pytestmark = pytest.mark.integration

LABELS = [
    "train[0] C=0.1 penalty=l1",
    "train[1] C=0.1 penalty=l2",
    "train[2] C=1.0 penalty=l1",
    "train[3] C=1.0 penalty=l2",
    "train[4] C=10.0 penalty=l1",
    "train[5] C=10.0 penalty=l2",
]
POINTS = [{"C": c, "penalty": p} for c in GRID["C"] for p in GRID["penalty"]]


def run_dir(project: Project) -> Path:
    (found,) = (project.root / ".nbops" / "artifacts" / "runs" / "sweep").glob("2*")
    return found


def test_a_grid_runs_one_attempt_and_one_record_per_point_and_downstream_sees_every_point(project: Project) -> None:
    sweep_project(project, register=True, gate=True)
    result = project.nbops("run", "pipeline.yaml", "--jobs", "2")
    assert result.returncode == 0, result.stderr
    for label in LABELS:
        assert f"ok    {label}" in result.stderr
    # one attempt per point, under train/point-<digest of its parameters>, its point in the manifest
    for index, params in enumerate(POINTS):
        attempt = run_dir(project) / "train" / f"point-{point_id(params)}" / "attempt-1"
        manifest = read_manifest(attempt)
        assert manifest.point is not None and manifest.point.index == index
        assert manifest.point.parameters == params and manifest.parameters == params
        assert manifest.metrics["score"] == score(params["C"], params["penalty"])
    # one nested MLflow run per point, its parameters as params and its point as tags
    runs = point_runs(project)
    assert [r.data.tags["nbops.point_label"] for r in runs] == LABELS
    assert [(r.data.params["C"], r.data.params["penalty"]) for r in runs] == [
        (str(p["C"]), p["penalty"]) for p in POINTS
    ]
    assert [r.info.run_name for r in runs] == [f"train[{i}] #1" for i in range(6)]
    # the downstream stage read every point in point order, with its parameters
    (pick,) = (run_dir(project) / "pick").glob("attempt-1")
    seen = read_json(pick / "outputs" / "seen.json")
    assert seen == [[p, p] for p in POINTS]
    consumed = [(i.stage, i.point.index if i.point else None) for i in read_manifest(pick).inputs]
    assert consumed == [("prep", None), *[("train", i) for i in range(6)]]
    # the gate judged the best point's version; the other points' versions are candidates, never aliased
    best = max(range(6), key=lambda i: score(POINTS[i]["C"], POINTS[i]["penalty"]))
    assert "the sweep's best point by score: " + LABELS[best] in result.stderr
    client = project.client()
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.run_id == runs[best].info.run_id
    assert champion.tags["nbops.gate.point"] == LABELS[best]
    others = [v for v in client.search_model_versions(f"name='{MODEL}'") if v.version != champion.version]
    assert len(others) == 5
    for version in others:
        assert "nbops.gate.decision" not in version.tags
        assert version.tags["nbops.gate.candidate"].startswith("another point of the sweep")
    # the leaderboard: best first by the gate's metric, on the pipeline run and in the summary
    parent = next(r for r in project.runs("sweep") if r.data.tags.get("nbops.kind") == "pipeline")
    text = client.download_artifacts(parent.info.run_id, "sweeps/train.csv", str(project.root / "dl"))
    rows = list(csv.DictReader(io.StringIO(Path(text).read_text())))
    assert rows[0]["point"] == f"train[{best}]"
    assert sorted(float(r["score"]) for r in rows) == sorted(score(p["C"], p["penalty"]) for p in POINTS)
    assert {r["status"] for r in rows} == {"succeeded"} and set(rows[0]) >= {"C", "penalty", "score", "mlflow_run"}
    html = client.download_artifacts(parent.info.run_id, "sweeps/train.html", str(project.root / "dl"))
    assert "<table>" in Path(html).read_text() and LABELS[best].split(" ")[0] in Path(html).read_text()
    assert f"  1. {LABELS[best]}: score = {score(1.0, 'l2'):g}" in result.stderr
    # the audit of the champion names its point's parameters; that of the run walks every point pick consumed
    audited = project.nbops("audit", f"{MODEL}@champion")
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert "C = 1.0  (point; notebook default 1.0)" in audited.stdout
    assert 'penalty = "l2"  (point; notebook default "l2")' in audited.stdout
    walked = project.nbops("audit", "--run", run_dir(project).name)
    assert walked.returncode == 0, walked.stdout + walked.stderr
    for params in POINTS:
        assert f"train/point-{point_id(params)}#1  succeeded" in walked.stdout


def test_a_widened_grid_runs_only_its_new_points(project: Project) -> None:
    sweep_project(project)
    first = project.nbops("run", "pipeline.yaml")
    assert first.returncode == 0, first.stderr
    spec = yaml.safe_load(project.pipeline.read_text())
    spec["stages"]["train"]["grid"]["C"].append(100.0)
    project.pipeline.write_text(yaml.safe_dump(spec, sort_keys=False))
    second = project.nbops("run", "pipeline.yaml")
    assert second.returncode == 0, second.stderr
    ran = [line.split()[3] for line in second.stderr.splitlines() if line.startswith("[") and " ok " in line]
    cached = [line.split()[3] for line in second.stderr.splitlines() if " cache " in line]
    assert sorted(ran[:2]) == ["train[6]", "train[7]"] and ran[2:] == ["pick"]  # the new points run at once
    assert cached == ["prep", *[f"train[{i}]" for i in range(6)]]


def test_a_failing_point_fails_the_stage_after_the_others_finish_and_reruns_alone_on_resume(project: Project) -> None:
    sweep_project(project)
    (project.root / "fail-C10.0").write_text("")
    result = project.nbops("run", "pipeline.yaml", "--jobs", "1")
    assert result.returncode == 1, result.stderr
    assert "FAIL  train[4] C=10.0 penalty=l1" in result.stderr and "point C=10.0 told to fail" in result.stderr
    # the point after it still ran (and fails too: it has C=10.0 as well); the others passed
    assert result.stderr.index("FAIL  train[4]") < result.stderr.index("start train[5] C=10.0 penalty=l2")
    assert (
        "FAIL  train[5] C=10.0 penalty=l2" in result.stderr
        and "Sweep of 'train': 6 point(s), 2 failed" in result.stderr
    )
    assert "skip  pick" in result.stderr
    resume = next(ln.strip() for ln in result.stderr.splitlines() if ln.strip().startswith("nbops run pipeline.yaml"))
    assert "--from train" in resume
    assert f"nbops debug train --run {resume.split('--run-id ')[1].split()[0]} --point 4" in result.stderr
    (project.root / "fail-C10.0").unlink()
    again = project.nbops(*resume.split()[1:])
    assert again.returncode == 0, again.stderr
    ran = [line.split()[3] for line in again.stderr.splitlines() if line.startswith("[") and " ok " in line]
    # the failed points (at once, in either order), then what needs them
    assert sorted(ran[:2]) == ["train[4]", "train[5]"] and ran[2:] == ["pick"]
    assert sum(1 for line in again.stderr.splitlines() if " cache " in line) == 4


def test_p_on_a_swept_parameter_is_refused_and_on_another_applies_to_every_point(project: Project) -> None:
    sweep_project(project, sweep={"grid": {"C": [0.5, 2.0]}})
    refused = project.nbops("run", "pipeline.yaml", "-p", "train.C=3")
    assert refused.returncode == 2
    assert "-p train.C: 'C' is swept by stages.train.grid (2 points)" in refused.stderr
    assert not (project.root / ".nbops" / "artifacts" / "runs").exists() or not list(
        (project.root / ".nbops" / "artifacts" / "runs" / "sweep").glob("*/train")
    )
    applied = project.nbops("run", "pipeline.yaml", "-p", "train.penalty=l1")
    assert applied.returncode == 0, applied.stderr
    assert [r.data.params["penalty"] for r in point_runs(project)] == ["l1", "l1"]


def test_foreach_runs_an_explicit_list_and_foreach_from_fans_out_what_a_stage_wrote(project: Project) -> None:
    sweep_project(project, sweep={"foreach_from": {"stage": "prep", "file": "sets.json"}})
    result = project.nbops("run", "pipeline.yaml")
    assert result.returncode == 0, result.stderr
    assert "ok    train[0] C=0.5" in result.stderr and "ok    train[1] C=2.0 penalty=l1" in result.stderr
    (pick,) = (run_dir(project) / "pick").glob("attempt-1")
    assert read_json(pick / "outputs" / "seen.json") == [
        [{"C": 0.5}, {"C": 0.5, "penalty": "l2"}],
        [{"C": 2.0, "penalty": "l1"}, {"C": 2.0, "penalty": "l1"}],
    ]


def test_a_foreach_from_list_the_notebook_refuses_fails_the_stage_with_exit_2(project: Project) -> None:
    sweep_project(project, sweep={"foreach_from": {"stage": "prep", "file": "missing.json"}})
    result = project.nbops("run", "pipeline.yaml")
    assert result.returncode == 2, result.stderr
    assert "missing.json (foreach_from of stage 'train'): stage 'prep' wrote no such file" in result.stderr


def test_nbops_test_runs_a_sweep_on_its_first_point_unless_told_otherwise(project: Project) -> None:
    sweep_project(project)
    first = project.nbops("test", "pipeline.yaml")
    assert first.returncode == 0, first.stderr
    assert "train[0] C=0.1 penalty=l1" in first.stderr and "train[1]" not in first.stderr
    every = project.nbops("test", "pipeline.yaml", "--all-points")
    assert every.returncode == 0, every.stderr
    assert all(label in every.stderr for label in LABELS)


def test_lint_names_each_grid_value_the_notebook_refuses_at_its_line(project: Project) -> None:
    sweep_project(project, sweep={"grid": {"C": [0.1, "big"], "penalti": ["l1"]}, "max_parallel": 2})
    result = project.nbops("lint", "pipeline.yaml")
    assert result.returncode == 2
    assert "stages.train.grid.C.1: nb/train.ipynb: parameter 'C' expects float, got str \"big\"" in result.stderr
    assert "stages.train.grid.penalti.0: nb/train.ipynb: unknown parameter 'penalti'; did you mean 'penalty'?" in (
        result.stderr
    )
