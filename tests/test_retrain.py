"""The retraining gate through the commands: `nbops run` decides after the gate's stage, prints
and records the decision and alerts on a champion change; `nbops gate` re-runs it; `nbops
approve` moves the champion when approval is manual."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from nbops.tracking import tags
from tests.conftest import Project
from tests.hookserver import HookServer

MODEL = "clf"
EVALUATE = [
    ("score: float = 0.9  # the metric this run reports\nregister: bool = True  # register a version", ["parameters"]),
    (
        "import nbops\nfrom sklearn.dummy import DummyClassifier\n"
        "model = DummyClassifier(strategy='prior').fit([[0], [1]], [0, 1])\n"
        f"if register:\n    nbops.log_model(model, name='model', registered_model_name='{MODEL}', pip_requirements=['scikit-learn'])",
        [],
    ),
    ("auc = score", ["metrics"]),
]


@pytest.fixture(scope="module")
def hook() -> Iterator[HookServer]:
    server = HookServer()
    yield server
    server.close()


def gated_project(project: Project, hook: HookServer, approval: str = "auto") -> Project:
    project.add_notebook("evaluate", EVALUATE)
    project.write_spec(
        {
            "name": "gated",
            "stages": {"evaluate": {"notebook": "nb/evaluate.ipynb"}},
            "retrain": {
                "model": MODEL,
                "stage": "evaluate",
                "metric": "auc",
                "min_improvement": 0.01,
                "approval": approval,
            },
            "alerts": {"urls": [hook.url()], "on": ["failure", "champion_change"]},
        }
    )
    return project


def run(project: Project, *params: str) -> Any:
    return project.nbops("run", *[a for p in params for a in ("-p", p)])


def parent_tags(project: Project) -> dict[str, str]:
    parents = [r for r in project.runs("gated") if r.data.tags.get(tags.KIND) == "pipeline"]
    newest = max(parents, key=lambda r: r.info.start_time)
    return dict(newest.data.tags)


def champion(project: Project) -> str:
    return str(project.client().get_model_version_by_alias(MODEL, "champion").version)


def test_nbops_run_gates_records_prints_and_alerts(project: Project, hook: HookServer) -> None:
    gated_project(project, hook)
    first = run(project, "evaluate.score=0.9")
    assert first.returncode == 0, first.stderr
    assert "gate clf: promoted (first_version)" in first.stderr
    assert champion(project) == "1"
    changed = [m for m in hook.messages() if "champion" in m["title"] and "gated" in m["title"]]
    assert changed and "version 1 of clf is the new champion" in changed[-1]["title"]

    kept = run(project, "evaluate.score=0.905")
    assert kept.returncode == 0, kept.stderr
    assert "gate clf: kept (below_margin)" in kept.stderr
    recorded = parent_tags(project)
    assert recorded[tags.GATE_DECISION] == "kept"
    assert (recorded[tags.GATE_CHALLENGER_VALUE], recorded[tags.GATE_CHAMPION_VALUE]) == ("0.905", "0.9")
    assert recorded[tags.GATE_VERSION] == "2"
    assert champion(project) == "1"
    assert len([m for m in hook.messages() if "new champion" in m["title"]]) == len(changed)

    won = run(project, "evaluate.score=0.95")
    assert "gate clf: promoted (won)" in won.stderr
    assert champion(project) == "3"

    nothing = run(project, "evaluate.register=False")
    assert nothing.returncode == 1, nothing.stderr
    assert "registered no version of 'clf'" in nothing.stderr
    assert champion(project) == "3"
    failed = [m for m in hook.messages() if "failed" in m["title"]]
    assert failed and "retraining gate" in failed[-1]["message"]

    again = project.nbops("gate", "--run-id", parent_tags(project)[tags.RUN_ID])
    assert again.returncode == 1 and "no_version" in again.stdout


def test_manual_approval_waits_for_nbops_approve(project: Project, hook: HookServer) -> None:
    gated_project(project, hook, approval="manual")
    first = run(project, "evaluate.score=0.9")
    assert first.returncode == 0, first.stderr
    assert "awaiting_approval" in first.stderr
    client = project.client()
    assert "champion" not in client.get_registered_model(MODEL).aliases
    approved = project.nbops("approve")
    assert approved.returncode == 0, approved.stderr
    assert "promoted" in approved.stdout and "approved by" in approved.stdout
    assert champion(project) == "1"
    assert client.get_model_version(MODEL, "1").tags[tags.GATE_APPROVED_BY]

    nothing = project.nbops("approve")
    assert nothing.returncode == 2 and "awaits approval" in nothing.stderr

    second = run(project, "evaluate.score=0.99")
    assert "awaiting_approval" in second.stderr
    refused = project.nbops("approve", "--reject", "--run-id", parent_tags(project)[tags.RUN_ID])
    assert refused.returncode == 0, refused.stderr
    assert "rejected" in refused.stdout
    assert champion(project) == "1"
    assert parent_tags(project)[tags.GATE_DECISION] == "rejected"


def test_a_reused_stage_whose_gate_failed_fails_again_then_is_judged_once_fixed(
    project: Project, hook: HookServer
) -> None:
    gated_project(project, hook)
    spec = project.pipeline.read_text()
    project.pipeline.write_text(spec.replace("metric: auc", "metric: auc2"))
    failed = run(project)
    assert failed.returncode == 1 and "logged no metric 'auc2'" in failed.stderr
    again = run(project)  # evaluate is reused; its version was never judged: the gate decides, and fails, again
    assert "no notebook ran" in again.stderr
    assert again.returncode == 1, again.stderr
    project.pipeline.write_text(spec)  # the rule fixed; the stage's key does not change
    fixed = run(project)
    assert fixed.returncode == 0, fixed.stderr
    assert "no notebook ran" in fixed.stderr and "gate clf: promoted (first_version)" in fixed.stderr
    assert champion(project) == "1"


@pytest.mark.unit
def test_the_gate_decides_again_when_a_concurrent_gate_moved_the_champion(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from nbops import retrain
    from nbops.tracking import gate

    decisions = iter(["against v1", "against v2", "against v3", "never"])
    applied: list[str] = []

    def apply(client: Any, result: Any, parent: Any) -> Any:
        applied.append(result.basis)
        if result.basis != "against v2":
            raise gate.ChampionMoved("another gate moved it meanwhile")
        return result

    spec = SimpleNamespace(retrain=SimpleNamespace(model="m"), name="p", path="pipeline.yaml")
    monkeypatch.setattr(retrain, "_experiment", lambda client, pipeline: "1")
    monkeypatch.setattr(retrain.pipeline_run, "find", lambda client, experiment, run_id: "parent")
    monkeypatch.setattr(gate, "decide", lambda *a: SimpleNamespace(basis=next(decisions), champion_changed=False))
    monkeypatch.setattr(gate, "apply", apply)
    result = retrain.run_gate(None, SimpleNamespace(spec=spec, **vars(spec)), "uri", "r1")  # type: ignore[arg-type]
    assert result.basis == "against v2" and applied == ["against v1", "against v2"]
    decisions = iter(["a", "b", "c", "never"])
    applied.clear()
    with pytest.raises(gate.ChampionMoved):
        retrain.run_gate(None, SimpleNamespace(spec=spec, **vars(spec)), "uri", "r1")  # type: ignore[arg-type]
    assert applied == ["a", "b", "c"]  # REDECIDE tries, then the failure is the gate's (exit 3, retried)
