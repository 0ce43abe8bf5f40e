"""Incremental runs: an unchanged re-run executes no notebook; a change in a parameter, a notebook,
a carried file or an upstream output re-runs exactly what depends on it; `cache: false`,
`--force`, the `cached` record and its audit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat

from nbops.storage.manifest import read_manifest
from nbops.tracking import tags
from tests.conftest import Project, notebook

A = [
    ("n: int = 3  # rows", ["parameters"]),
    ("import nbops\n(nbops.output_dir() / 'a.txt').write_text(str(n))", []),
    ("rows = n", ["metrics"]),
]
B = [
    ("k: int = 2  # factor", ["parameters"]),
    (
        "import nbops\nv = int((nbops.input_dir('a') / 'a.txt').read_text())\n(nbops.output_dir() / 'b.txt').write_text(str(v * k))",
        [],
    ),
]
C = [
    ("import nbops\nfrom helper import offset\nv = int((nbops.input_dir('b') / 'b.txt').read_text()) + offset", []),
    ("final = v", ["metrics"]),
]


def incremental_project(project: Project, spec: dict[str, Any] | None = None) -> Project:
    project.add_notebook("a", A)
    project.add_notebook("b", B)
    (project.root / "nb2").mkdir()
    nbformat.write(notebook(C), project.root / "nb2" / "c.ipynb")
    (project.root / "nb2" / "helper.py").write_text("offset = 1\n")
    stages = {
        "a": {"notebook": "nb/a.ipynb"},
        "b": {"notebook": "nb/b.ipynb", "needs": ["a"]},
        "c": {"notebook": "nb2/c.ipynb", "needs": ["b"]},
    }
    for name, extra in (spec or {}).items():
        stages[name].update(extra)
    project.write_spec({"name": "inc", "stages": stages})
    return project


def statuses(project: Project, *args: str) -> dict[str, str]:
    """Run and return each stage's status in the summary table."""
    done = project.nbops("run", *args)
    assert done.returncode == 0, done.stderr
    table = done.stderr.split("stage  status", 1)[1].splitlines()[2:]
    return {line.split()[0]: line.split()[1] for line in table if line.strip() and not line.startswith("Run ")}


def newest(project: Project, stage: str) -> Path:
    return max(project.attempts("inc", stage), key=lambda p: p.stat().st_mtime_ns)


def test_an_unchanged_rerun_executes_no_notebook_and_records_each_stage_as_cached(project: Project) -> None:
    incremental_project(project)
    assert statuses(project) == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}
    first = {s: read_manifest(newest(project, s)) for s in "abc"}
    again = project.nbops("run")
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("no notebook ran") == 3
    for stage in "abc":
        attempt = newest(project, stage)
        manifest = read_manifest(attempt)
        assert manifest.status == "cached" and not (attempt / "output.ipynb").exists()
        assert manifest.reused is not None and manifest.reused.run_id == first[stage].run_id
        assert manifest.reused.mlflow_run_id == first[stage].mlflow_run_id
        assert manifest.metrics == first[stage].metrics
    # The cached c names the attempts that ran as its inputs, as the first c did.
    assert read_manifest(newest(project, "c")).inputs == first["c"].inputs
    runs = {r.info.run_id: r for r in project.runs("inc")}
    cached = [r for r in runs.values() if r.data.tags.get(tags.STATUS) == "cached"]
    assert len(cached) == 3 and all(r.info.status == "FINISHED" for r in cached)
    assert {r.data.tags[tags.REUSED_MLFLOW_RUN] for r in cached} == {m.mlflow_run_id for m in first.values()}
    audit = project.nbops("audit", "--run", read_manifest(newest(project, "c")).run_id)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "(reused by a cached attempt)" in audit.stdout


def test_a_change_reruns_exactly_what_depends_on_it(project: Project) -> None:
    incremental_project(project)
    statuses(project)
    assert statuses(project, "-p", "b.k=5") == {"a": "cached", "b": "succeeded", "c": "succeeded"}
    assert statuses(project, "-p", "b.k=5") == {"a": "cached", "b": "cached", "c": "cached"}
    # A carried helper file changes: only the stage that carries it.
    (project.root / "nb2" / "helper.py").write_text("offset = 2\n")
    assert statuses(project, "-p", "b.k=5") == {"a": "cached", "b": "cached", "c": "succeeded"}
    assert read_manifest(newest(project, "c")).metrics == {"final": 17.0}
    # A notebook byte changes: that stage and what depends on it.
    path = project.root / "nb" / "a.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].source += "\n# touched"
    nbformat.write(nb, path)
    assert statuses(project, "-p", "b.k=5") == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}


def test_cache_false_and_force(project: Project) -> None:
    incremental_project(project, {"a": {"cache": False}})
    statuses(project)
    # a reads the outside world: it always runs, so its new output re-runs b and c.
    assert statuses(project) == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}
    assert read_manifest(newest(project, "a")).cache_key is None


def test_force_reruns_a_stage_and_its_descendants_or_everything(project: Project) -> None:
    incremental_project(project)
    statuses(project)
    assert statuses(project, "--force", "b") == {"a": "cached", "b": "succeeded", "c": "succeeded"}
    assert statuses(project, "--force") == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}
    unknown = project.nbops("run", "--force", "bb")
    assert unknown.returncode == 2 and "unknown stage 'bb'; did you mean 'b'" in unknown.stderr


def test_an_attempt_altered_after_it_finished_is_never_reused(project: Project) -> None:
    incremental_project(project)
    statuses(project)
    entry = next((project.root / ".nbops" / "artifacts" / "cache" / "inc" / "a").glob("*.json"))
    original = json.loads(entry.read_text())
    manifest = (
        project.root
        / ".nbops"
        / "artifacts"
        / "runs"
        / "inc"
        / original["run_id"]
        / "a"
        / "attempt-1"
        / "manifest.json"
    )
    manifest.write_text(manifest.read_text().replace('"rows": 3.0', '"rows": 4.0'))  # altered after it finished
    assert statuses(project)["a"] == "succeeded"


def test_a_downstream_stage_whose_reused_upstream_vanished_says_so(project: Project) -> None:
    incremental_project(project)
    statuses(project)
    statuses(project)  # every stage reused
    second = read_manifest(newest(project, "a"))
    assert second.reused is not None
    original = project.root / ".nbops" / "artifacts" / "runs" / "inc" / second.reused.run_id / "a" / "attempt-1"
    (original / "manifest.json").unlink()  # the attempt the cached `a` stands for is gone
    rerun = project.nbops("run", "--run-id", second.run_id, "--stage", "b", "--force", "b")
    assert rerun.returncode == 2, rerun.stderr
    assert f"reused attempt 1 of run {second.reused.run_id}, which has no manifest" in rerun.stderr
    assert "nbops run --force a" in rerun.stderr
