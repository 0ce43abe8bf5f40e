"""The gate's outcomes against a real MLflow registry (SQLite): first version, wins, loses, ties,
below the margin, already champion, missing version or metric, manual approval."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from nbops.errors import InputError
from nbops.spec import RetrainSpec
from nbops.tracking import gate, tags
from nbops.tracking.gate import Decision, GateResult, Reason

MODEL = "clf"


class Registry:
    """A throw-away tracking store with helpers to fake what a gate stage leaves behind."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
        self.experiment = self.client.create_experiment("p", artifact_location=(root / "art").as_uri())
        self.runs = 0

    def stage_run(self, metrics: dict[str, float], register: bool = True, stage: str = "evaluate") -> tuple[str, str]:
        """A succeeded stage run of a new pipeline run with ``metrics``; returns (pipeline run id, version)."""
        self.runs += 1
        run_id = f"run-{self.runs}"
        run = self.client.create_run(
            self.experiment,
            tags={tags.RUN_ID: run_id, tags.STAGE: stage, tags.STATUS: "succeeded", tags.ATTEMPT: "1"},
        )
        for key, value in metrics.items():
            self.client.log_metric(run.info.run_id, key, value)
        version = ""
        if register:
            if not self.client.search_registered_models(f"name = '{MODEL}'"):
                self.client.create_registered_model(MODEL)
            source = self.root / "models" / run_id
            source.mkdir(parents=True)
            made = self.client.create_model_version(
                MODEL, str(source), run_id=run.info.run_id, tags={tags.RUN_ID: run_id}
            )
            version = str(made.version)
        return run_id, version

    def decide(self, run_id: str, **spec: Any) -> GateResult:
        retrain = RetrainSpec(model=MODEL, stage="evaluate", metric="auc", **spec)
        return gate.apply(self.client, gate.decide(self.client, retrain, self.experiment, run_id), None)

    def champion(self) -> str | None:
        found = gate.champion_version(self.client, MODEL)
        return None if found is None else str(found.version)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path)


def test_the_first_version_becomes_champion(registry: Registry) -> None:
    run_id, version = registry.stage_run({"auc": 0.9})
    result = registry.decide(run_id)
    assert (result.decision, result.reason) == (Decision.PROMOTED, Reason.FIRST_VERSION)
    assert registry.champion() == version
    assert str(registry.client.get_model_version_by_alias(MODEL, gate.CHALLENGER).version) == version
    assert gate.champion_run_id(registry.client, MODEL) == run_id


@pytest.mark.parametrize(
    ("auc", "direction", "decision", "reason"),
    [
        (0.95, "maximize", Decision.PROMOTED, Reason.WON),
        (0.901, "maximize", Decision.KEPT, Reason.BELOW_MARGIN),
        (0.9, "maximize", Decision.KEPT, Reason.TIE),
        (0.85, "maximize", Decision.KEPT, Reason.LOST),
        (0.85, "minimize", Decision.PROMOTED, Reason.WON),
        (0.95, "minimize", Decision.KEPT, Reason.LOST),
    ],
)
def test_the_challenger_against_the_champion(
    registry: Registry, auc: float, direction: str, decision: Decision, reason: Reason
) -> None:
    first, v1 = registry.stage_run({"auc": 0.9})
    registry.decide(first, direction=direction)
    run_id, v2 = registry.stage_run({"auc": auc})
    result = registry.decide(run_id, direction=direction, min_improvement=0.002)
    assert (result.decision, result.reason) == (decision, reason)
    assert (result.challenger_value, result.champion_value, result.champion_version) == (auc, 0.9, v1)
    assert registry.champion() == (v2 if decision is Decision.PROMOTED else v1)
    assert str(registry.client.get_model_version_by_alias(MODEL, gate.CHALLENGER).version) == v2
    recorded = registry.client.get_model_version(MODEL, v2).tags
    assert recorded[tags.GATE_DECISION] == decision.value
    assert recorded[tags.GATE_REASON] == reason.value
    assert float(recorded[tags.GATE_MARGIN]) == pytest.approx(auc - 0.9 if direction == "maximize" else 0.9 - auc)
    assert "0.002" in recorded[tags.GATE_RULE]


def test_a_stage_run_that_registered_nothing_is_a_failed_gate(registry: Registry) -> None:
    run_id, _ = registry.stage_run({"auc": 0.9}, register=False)
    result = registry.decide(run_id)
    assert (result.decision, result.reason) == (Decision.FAILED, Reason.NO_VERSION)
    assert "registered_model_name='clf'" in result.message
    assert registry.champion() is None


def test_a_missing_metric_fails_the_gate_and_names_what_was_logged(registry: Registry) -> None:
    run_id, version = registry.stage_run({"accuracy": 0.9})
    result = registry.decide(run_id)
    assert (result.decision, result.reason, result.version) == (Decision.FAILED, Reason.NO_METRIC, version)
    assert "logged: accuracy" in result.message
    assert registry.champion() is None


def test_a_champion_without_the_metric_keeps_it_and_says_why(registry: Registry) -> None:
    first, v1 = registry.stage_run({"auc": 0.9})
    registry.decide(first)
    second, _ = registry.stage_run({"roc": 0.99})
    third, _ = registry.stage_run({"auc": 0.99})
    registry.client.set_registered_model_alias(MODEL, gate.CHAMPION, "2")  # a hand-moved alias
    result = registry.decide(third)
    assert (result.decision, result.reason) == (Decision.FAILED, Reason.CHAMPION_NO_METRIC)
    assert registry.champion() == "2"
    del second, v1


def test_deciding_twice_is_idempotent(registry: Registry) -> None:
    run_id, version = registry.stage_run({"auc": 0.9})
    registry.decide(run_id)
    again = registry.decide(run_id)
    assert (again.decision, again.reason) == (Decision.KEPT, Reason.ALREADY_CHAMPION)
    assert registry.champion() == version


def test_manual_approval_waits_then_moves_the_champion(registry: Registry) -> None:
    first, v1 = registry.stage_run({"auc": 0.9})
    registry.decide(first, approval="manual")
    assert registry.champion() is None  # even the first version waits for a person
    approved = gate.apply(registry.client, gate.approve(registry.client, MODEL, v1, "ana"), None)
    assert (approved.decision, approved.approved_by) == (Decision.PROMOTED, "ana")
    assert registry.champion() == v1
    run_id, v2 = registry.stage_run({"auc": 0.95})
    waiting = registry.decide(run_id, approval="manual")
    assert waiting.decision is Decision.AWAITING_APPROVAL
    assert registry.champion() == v1
    rejected = gate.apply(registry.client, gate.approve(registry.client, MODEL, v2, "bo", reject=True), None)
    assert rejected.decision is Decision.REJECTED
    assert registry.champion() == v1
    with pytest.raises(InputError, match="not awaiting approval"):
        gate.approve(registry.client, MODEL, v2, "bo")


def test_an_approval_is_refused_once_the_champion_moved(registry: Registry) -> None:
    first, _v1 = registry.stage_run({"auc": 0.9})
    registry.decide(first)
    run_id, v2 = registry.stage_run({"auc": 0.95})
    registry.decide(run_id, approval="manual")
    registry.client.set_registered_model_alias(MODEL, gate.CHAMPION, v2)
    registry.client.set_registered_model_alias(MODEL, gate.CHAMPION, "1")
    third, v3 = registry.stage_run({"auc": 0.97})
    registry.decide(third)
    with pytest.raises(InputError, match="no longer holds"):
        gate.approve(registry.client, MODEL, v2, "ana")
    assert registry.champion() == v3


def test_a_rejection_is_recorded_even_once_the_champion_moved(registry: Registry) -> None:
    """Two runs await approval at once; one is approved (the champion moves), then the other is
    rejected: recorded ``rejected`` although its comparison no longer holds; no alias moves."""
    first, v1 = registry.stage_run({"auc": 0.9})
    registry.decide(first, approval="manual")
    second, v2 = registry.stage_run({"auc": 0.95})
    registry.decide(second, approval="manual")
    gate.apply(registry.client, gate.approve(registry.client, MODEL, v1, "ana"), None)
    rejected = gate.apply(registry.client, gate.approve(registry.client, MODEL, v2, "bo", reject=True), None)
    assert rejected.decision is Decision.REJECTED
    assert dict(registry.client.get_model_version(MODEL, v2).tags)[tags.GATE_DECISION] == "rejected"
    assert registry.champion() == v1
    assert str(registry.client.get_model_version_by_alias(MODEL, gate.CHALLENGER).version) == v1


def test_the_decision_reads_back_from_its_tags(registry: Registry) -> None:
    run_id, _ = registry.stage_run({"auc": 0.9})
    result = registry.decide(run_id)
    assert GateResult.from_tags(result.to_tags()) == result


def cached_run(registry: Registry, reused_stage_run: str) -> str:
    """A pipeline run whose gate stage reused the attempt recorded as ``reused_stage_run``."""
    registry.runs += 1
    run_id = f"run-{registry.runs}"
    registry.client.create_run(
        registry.experiment,
        tags={
            tags.RUN_ID: run_id,
            tags.STAGE: "evaluate",
            tags.STATUS: "cached",
            tags.ATTEMPT: "1",
            tags.REUSED_MLFLOW_RUN: reused_stage_run,
            tags.REUSED_RUN: "run-1",
        },
    )
    return run_id


def test_a_reused_stage_whose_version_was_judged_keeps_that_record(registry: Registry) -> None:
    first, version = registry.stage_run({"auc": 0.9})
    registry.decide(first)
    stage_run = registry.client.get_model_version(MODEL, version).run_id
    result = registry.decide(cached_run(registry, stage_run))
    assert (result.decision, result.reason, result.version) == (Decision.KEPT, Reason.REUSED, version)
    kept = registry.client.get_model_version(MODEL, version).tags
    assert (kept[tags.GATE_DECISION], kept[tags.GATE_REASON]) == ("promoted", "first_version")


def test_a_reused_stage_whose_version_was_never_judged_is_judged_now(registry: Registry) -> None:
    first, version = registry.stage_run({"auc": 0.9})  # its run's gate never ran
    stage_run = registry.client.get_model_version(MODEL, version).run_id
    result = registry.decide(cached_run(registry, stage_run))
    assert (result.decision, result.reason, result.version) == (Decision.PROMOTED, Reason.FIRST_VERSION, version)
    assert registry.champion() == version
    del first


def test_two_gates_deciding_at_once_cannot_both_promote(registry: Registry) -> None:
    first, _ = registry.stage_run({"auc": 0.9})
    registry.decide(first)
    a, _ = registry.stage_run({"auc": 0.95})
    b, vb = registry.stage_run({"auc": 0.97})
    retrain = RetrainSpec(model=MODEL, stage="evaluate", metric="auc")
    # A cron run and a drift-triggered run both decide against the same champion, then apply.
    decided_a = gate.decide(registry.client, retrain, registry.experiment, a)
    decided_b = gate.decide(registry.client, retrain, registry.experiment, b)
    assert decided_a.decision is decided_b.decision is Decision.PROMOTED
    gate.apply(registry.client, decided_b, None)
    with pytest.raises(gate.ChampionMoved, match="another gate moved it meanwhile"):
        gate.apply(registry.client, decided_a, None)
    assert registry.champion() == vb
    again = registry.decide(a)  # judged again, against the new champion: 0.95 loses to 0.97
    assert (again.decision, again.champion_version) == (Decision.KEPT, vb)
    assert registry.champion() == vb


def _point(registry: Registry, run_id: str, index: int, auc: float | None, status: str = "succeeded") -> str:
    """A point of a swept ``evaluate`` in pipeline run ``run_id`` that registered a version; returns it."""
    label = f"evaluate[{index}] C={index}"
    run = registry.client.create_run(
        registry.experiment,
        tags={
            tags.RUN_ID: run_id,
            tags.STAGE: "evaluate",
            tags.STATUS: status,
            tags.ATTEMPT: "1",
            tags.POINT: str(index),
            tags.POINT_ID: f"{index:012x}",
            tags.POINT_LABEL: label,
        },
    )
    if auc is not None:
        registry.client.log_metric(run.info.run_id, "auc", auc)
    if not registry.client.search_registered_models(f"name = '{MODEL}'"):
        registry.client.create_registered_model(MODEL)
    source = registry.root / "models" / f"{run_id}-{index}"
    source.mkdir(parents=True)
    return str(registry.client.create_model_version(MODEL, str(source), run_id=run.info.run_id).version)


@pytest.mark.parametrize(("direction", "best"), [("maximize", 2), ("minimize", 0)])
def test_a_swept_stage_s_best_point_is_the_challenger_and_the_others_are_candidates(
    registry: Registry, direction: str, best: int
) -> None:
    versions = [_point(registry, "sweep-1", i, auc) for i, auc in enumerate([0.80, 0.90, 0.95, 0.95])]
    _point(registry, "sweep-1", 4, 0.99, status="failed")  # a failed point is never judged
    result = registry.decide("sweep-1", direction=direction)
    assert (result.decision, result.reason) == (Decision.PROMOTED, Reason.FIRST_VERSION)
    assert result.version == versions[best] and registry.champion() == versions[best]
    assert result.point == f"evaluate[{best}] C={best}"  # the first of equal points wins
    assert f"the sweep's best point by auc: evaluate[{best}] C={best}" in result.message
    judged = registry.client.get_model_version(MODEL, versions[best])
    assert judged.tags[tags.GATE_POINT] == result.point
    for version in (v for v in versions if v != versions[best]):
        tagged = registry.client.get_model_version(MODEL, version).tags
        assert tags.GATE_DECISION not in tagged and tags.GATE_CANDIDATE in tagged
    assert not registry.client.get_model_version(MODEL, versions[best]).tags.get(tags.GATE_CANDIDATE)
