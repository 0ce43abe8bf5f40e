"""The local runner: parallel branches on one SQLite store, selection and resume."""

from __future__ import annotations

import hashlib
import re

import pytest

from nbops.errors import InputError
from nbops.runner.plan import select_stages
from nbops.spec import load_pipeline
from tests.conftest import Project, read_json

WORK = ("import time, nbops\nt0 = time.time()\ntime.sleep(1)\n(nbops.output_dir() / 'x.txt').write_text('x')", [])
METRICS = ("t_start = t0\nt_end = time.time()\nk = 1", ["metrics"])


def diamond(project: Project) -> None:
    stages = {}
    for name, needs in (("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["a"]), ("e", ["a"]), ("z", ["b", "c", "d", "e"])):
        stages[name] = {"notebook": project.add_notebook(name, [WORK, METRICS]), "needs": needs}
    project.write_spec({"name": "diamond", "stages": stages})


@pytest.mark.unit
def test_selection(project: Project) -> None:
    diamond(project)
    pipeline = load_pipeline(project.pipeline)
    assert select_stages(pipeline, (), None) == ["a", "b", "c", "d", "e", "z"]
    assert select_stages(pipeline, (), "c") == ["c", "z"]
    assert select_stages(pipeline, ("b",), None) == ["b"]
    with pytest.raises(InputError, match="unknown stage"):
        select_stages(pipeline, ("q",), None)


@pytest.mark.integration
def test_parallel_branches_share_sqlite_and_lose_nothing(project: Project) -> None:
    diamond(project)
    result = project.nbops("run", "--jobs", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    runs = project.runs("diamond")
    stages = {r.data.tags["nbops.stage"]: r for r in runs if r.data.tags.get("nbops.kind") == "stage"}
    assert sorted(stages) == ["a", "b", "c", "d", "e", "z"]
    assert all(r.info.status == "FINISHED" and r.data.metrics["k"] == 1.0 for r in stages.values())
    # The four middle stages overlapped in time (they ran concurrently).
    middle = [stages[s].data.metrics for s in "bcde"]
    assert max(m["t_start"] for m in middle) < min(m["t_end"] for m in middle)
    for s in "abcdez":
        (attempt,) = project.attempts("diamond", s)
        assert [f["path"] for f in read_json(attempt / "manifest.json")["files"]][-1] == "outputs/x.txt"
    # Each stage command reports how long each of its phases took.
    for path in project.root.glob(".nbops/artifacts/runs/diamond/*/.logs/*.result.json"):
        result = read_json(path)
        phases = result["phases"]
        assert set(phases) == {"prepare", "boot", "wait", "locate", "claim", "run", "archive", "record", "seal"}
        # Its time counts from its release: what ran before (started early, waiting) is not in it.
        released = sum(v for k, v in phases.items() if k not in ("prepare", "boot", "wait"))
        assert 1.0 < phases["run"] and released <= result["duration_s"] + 0.01  # each rounded to 1 ms


@pytest.mark.integration
def test_resume_from_a_stage_reuses_upstream_outputs(project: Project) -> None:
    project.write_spec(
        {
            "name": "resume",
            "stages": {
                "up": {"notebook": project.add_notebook("up", [WORK])},
                "down": {
                    "notebook": project.add_notebook(
                        "down",
                        [
                            ("fail: bool = True", ["parameters"]),
                            ("import nbops\nassert not fail\nprint(nbops.input_dir('up'))", []),
                        ],
                    ),
                    "needs": ["up"],
                },
            },
        }
    )
    first = project.nbops("run")
    assert first.returncode == 1
    resume = next(
        ln.strip() for ln in first.stderr.splitlines() if ln.strip().startswith("nbops run") and "--from" in ln
    )
    assert "--from down" in resume
    for hint in ("logs", "debug"):  # the failed attempt's cells, and the attempt reopened where it failed
        printed = next(ln.strip() for ln in first.stderr.splitlines() if ln.strip().startswith(f"nbops {hint} down"))
        looked = project.nbops(*printed.split()[1:])
        assert looked.returncode == 0 and "AssertionError" in looked.stdout, looked.stderr
    second = project.nbops(*resume.split()[1:], "-p", "down.fail=false")
    assert second.returncode == 0, second.stdout + second.stderr
    assert len(project.attempts("resume", "up")) == 1  # not re-run
    assert [a.name for a in project.attempts("resume", "down")] == ["attempt-1", "attempt-2"]
    parents = [r for r in project.runs("resume") if r.data.tags.get("nbops.kind") == "pipeline"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    # The resumed run says which attempt it built on; the re-run stage records what it read.
    assert parents[0].data.tags["nbops.reused"] == "up#1"
    assert parents[0].data.params == {"down.fail": "false"}
    (up,) = project.attempts("resume", "up")
    up_sha = hashlib.sha256((up / "manifest.json").read_bytes()).hexdigest()
    inputs = read_json(project.attempts("resume", "down")[1] / "manifest.json")["inputs"]
    assert inputs == [{"stage": "up", "attempt": 1, "manifest_sha256": up_sha, "location": str(up)}]
    down = next(r for r in project.runs("resume") if r.info.run_name == "down #2")
    (dataset,) = down.inputs.dataset_inputs
    assert (dataset.dataset.name, dataset.dataset.digest) == ("up", up_sha[:32])


@pytest.mark.integration
def test_exec_stage_refuses_missing_upstream(project: Project) -> None:
    project.write_spec(
        {
            "name": "refuse",
            "stages": {
                "up": {"notebook": project.add_notebook("up", [WORK])},
                "down": {"notebook": project.add_notebook("down", [("x = 1", [])]), "needs": ["up"]},
            },
        }
    )
    result = project.nbops("exec-stage", "--pipeline", "pipeline.yaml", "--stage", "down", "--run-id", "r1")
    assert result.returncode == 2
    assert "needs 'up', which has no completed attempt (no manifest.json) in run r1" in result.stderr
    assert not project.attempts("refuse", "down")


@pytest.mark.integration
def test_stages_start_early_record_through_the_runner_and_a_failure_cancels_them(project: Project) -> None:
    """``b`` and ``c`` start while their upstream runs and wait to be released; ``a`` fails, so
    ``b`` never claims an attempt, records nothing and leaves no log. The stage commands never
    import MLflow: the runner records for them."""
    project.write_spec(
        {
            "name": "early",
            "stages": {
                "a": {
                    "notebook": project.add_notebook("a", [("import time\ntime.sleep(3)\nraise ValueError('no')", [])])
                },
                "b": {"notebook": project.add_notebook("b", [("x = 1", [])]), "needs": ["a"]},
                "ok": {"notebook": project.add_notebook("ok", [("y = 2", [])])},
            },
        }
    )
    result = project.nbops("run", "--jobs", "2", "--run-id", "r1")
    assert result.returncode == 1, result.stderr
    assert project.attempts("early", "b") == []
    stage_runs = {
        r.data.tags["nbops.stage"]: r for r in project.runs("early") if r.data.tags.get("nbops.kind") == "stage"
    }
    assert sorted(stage_runs) == ["a", "ok"]
    assert stage_runs["a"].info.status == "FAILED" and stage_runs["ok"].info.status == "FINISHED"
    logs = project.root / ".nbops" / "artifacts" / "runs" / "early" / "r1" / ".logs"
    assert sorted(p.name for p in logs.glob("*.log")) == ["a-1.log", "ok-1.log"]
    assert re.search(r"^b\s+skipped", result.stderr, re.MULTILINE), result.stderr


def imported(text: str) -> set[str]:
    """Module names in ``python -X importtime`` output."""
    return {line.rsplit("|", 1)[-1].strip() for line in text.splitlines() if line.startswith("import time:")}


@pytest.mark.integration
def test_stage_commands_under_the_runner_never_import_mlflow(project: Project) -> None:
    project.write_spec({"name": "lean", "stages": {"s": {"notebook": project.add_notebook("s", [("x = 1", [])])}}})
    env = {"PYTHONPROFILEIMPORTTIME": "1"}  # each stage command's imports, in its log
    proc = project.popen("run", "--run-id", "r1", env=env)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "mlflow" in imported(stderr)  # the runner itself records
    (log,) = (project.root / ".nbops" / "artifacts" / "runs" / "lean" / "r1" / ".logs").glob("s-*.log")
    modules = imported(log.read_text())
    assert "nbops.stage.lifecycle" in modules  # the log really lists the stage command's imports
    assert not {m for m in modules if m.split(".")[0] == "mlflow"}
    (run,) = [r for r in project.runs("lean") if r.data.tags.get("nbops.kind") == "stage"]
    assert run.info.status == "FINISHED" and {a.path for a in project.client().list_artifacts(run.info.run_id)} >= {
        "output.ipynb",
        "output.html",
        "manifest.json",
    }


@pytest.mark.unit
def test_unknown_stages_and_parameters_suggest_the_nearest(project: Project) -> None:
    from nbops.runner.plan import checked_params as _checked_params

    project.add_notebook("prepare", [("rows = 1", ["parameters"])])
    project.add_notebook("train", [("C: float = 1.0", ["parameters"])])
    project.write_spec(
        {
            "name": "typos",
            "stages": {
                "prepare": {"notebook": "nb/prepare.ipynb"},
                "train": {"notebook": "nb/train.ipynb", "needs": ["prepare"]},
            },
        }
    )
    pipeline = load_pipeline(project.pipeline)
    with pytest.raises(InputError) as info:
        select_stages(pipeline, ("trian", "zzz"), "prepar")
    message = str(info.value)
    assert "--stage trian: unknown stage 'trian'; did you mean 'train'?" in message
    assert "--from prepar: unknown stage 'prepar'; did you mean 'prepare'?" in message
    assert "--stage zzz: unknown stage 'zzz'" in message and "the stages are prepare, train" in message
    with pytest.raises(InputError) as info:
        _checked_params(pipeline, ["train"], ("trian.C=1", "prepare.rows=2", "train.C=abc", "train.c=1"))
    message = str(info.value)
    assert "-p trian.*: unknown stage 'trian'; did you mean 'train'?" in message
    assert "-p prepare.*: stage 'prepare' is not part of this run" in message
    assert "-p train.C: expects float, got 'abc'" in message
    assert "-p train.c: unknown parameter 'c'; did you mean 'C'?" in message
    assert _checked_params(pipeline, ["prepare", "train"], ("train.C=0.5",)) == {"prepare": {}, "train": {"C": 0.5}}
