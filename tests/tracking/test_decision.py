"""The gate's rule is a pure function: a table of challengers and champions, no registry."""

from __future__ import annotations

import pytest

from nbops.spec import RetrainSpec
from nbops.tracking.decision import Contender, Decision, GateResult, Reason, compare, rule_of

pytestmark = pytest.mark.unit


def _retrain(direction: str = "maximize", approval: str = "auto", margin: float = 0.01) -> RetrainSpec:
    return RetrainSpec(
        model="m", stage="evaluate", metric="auc", direction=direction, min_improvement=margin, approval=approval
    )


def _decide(retrain: RetrainSpec, value: float, champion: Contender | None) -> GateResult:
    base = GateResult(
        model="m", metric="auc", rule=rule_of(retrain), decision=Decision.FAILED, reason=Reason.NO_VERSION, message=""
    )
    return compare(base, retrain, Contender("3", value), champion)


@pytest.mark.parametrize(
    ("retrain", "value", "champion", "decision", "reason", "margin"),
    [
        (_retrain(), 0.80, None, Decision.PROMOTED, Reason.FIRST_VERSION, None),
        (_retrain(approval="manual"), 0.80, None, Decision.AWAITING_APPROVAL, Reason.FIRST_VERSION, None),
        (_retrain(), 0.90, Contender("2", 0.85), Decision.PROMOTED, Reason.WON, 0.05),
        (_retrain(approval="manual"), 0.90, Contender("2", 0.85), Decision.AWAITING_APPROVAL, Reason.WON, 0.05),
        (_retrain(), 0.855, Contender("2", 0.85), Decision.KEPT, Reason.BELOW_MARGIN, 0.005),
        (_retrain(margin=0.0), 0.85, Contender("2", 0.85), Decision.KEPT, Reason.TIE, 0.0),
        (_retrain(), 0.70, Contender("2", 0.85), Decision.KEPT, Reason.LOST, -0.15),
        (_retrain(direction="minimize"), 0.70, Contender("2", 0.85), Decision.PROMOTED, Reason.WON, 0.15),
        (_retrain(direction="minimize"), 0.90, Contender("2", 0.85), Decision.KEPT, Reason.LOST, -0.05),
        (_retrain(), 0.90, Contender("3", 0.90), Decision.KEPT, Reason.ALREADY_CHAMPION, 0.0),
        (_retrain(), 0.90, Contender("2", None, "run2"), Decision.FAILED, Reason.CHAMPION_NO_METRIC, None),
    ],
)
def test_the_rule(
    retrain: RetrainSpec,
    value: float,
    champion: Contender | None,
    decision: Decision,
    reason: Reason,
    margin: float | None,
) -> None:
    result = _decide(retrain, value, champion)
    assert (result.decision, result.reason) == (decision, reason), result.message
    assert result.margin == pytest.approx(margin) if margin is not None else result.margin is None
    assert result.champion_changed is (decision is Decision.PROMOTED)
    if champion is not None and reason is not Reason.ALREADY_CHAMPION:
        assert result.champion_version == champion.version
    assert result.message  # every decision says why


def test_a_champion_without_the_metric_is_named_with_its_run() -> None:
    result = _decide(_retrain(), 0.9, Contender("2", None, "run2"))
    assert "version 2" in result.message and "run run2" in result.message and "nothing moved" in result.message
