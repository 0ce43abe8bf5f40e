"""The gate's rule as a pure function (DESIGN §12): challenger against champion, decided from
values alone. :mod:`nbops.tracking.gate` reads the registry around it and records what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from nbops.spec import RetrainSpec
from nbops.tracking import tags

CHAMPION = "champion"
CHALLENGER = "challenger"
TIE_TOLERANCE = 1e-12
"""Margins this close to zero are ties (metrics are floats logged and read back)."""


class Decision(StrEnum):
    """What the gate did to the ``champion`` alias."""

    PROMOTED = "promoted"
    KEPT = "kept"
    AWAITING_APPROVAL = "awaiting_approval"
    REJECTED = "rejected"
    FAILED = "failed"
    """The gate could not decide; nothing moved."""


class Reason(StrEnum):
    """Why the gate decided as it did."""

    FIRST_VERSION = "first_version"
    WON = "won"
    BELOW_MARGIN = "below_margin"
    TIE = "tie"
    LOST = "lost"
    ALREADY_CHAMPION = "already_champion"
    NO_VERSION = "no_version"
    NO_METRIC = "no_metric"
    CHAMPION_NO_METRIC = "champion_no_metric"
    REUSED = "reused"
    """The stage reused a completed attempt: no new version; that attempt's run was judged then."""


@dataclass(frozen=True)
class GateResult:
    """One decision of the gate, as recorded."""

    model: str
    metric: str
    rule: str
    decision: Decision
    reason: Reason
    message: str
    version: str | None = None
    challenger_value: float | None = None
    champion_version: str | None = None
    champion_value: float | None = None
    margin: float | None = None
    approved_by: str | None = None
    point: str | None = None
    """When the gate's stage is swept: the label of the point whose version was judged."""
    candidates: tuple[str, ...] = ()
    """When the gate's stage is swept: the versions the other points registered (tagged, never aliased)."""

    @property
    def champion_changed(self) -> bool:
        """Whether ``champion`` now names the challenger (and did not before)."""
        return self.decision is Decision.PROMOTED

    @property
    def failed(self) -> bool:
        """The gate could not decide (no version, a metric missing)."""
        return self.decision is Decision.FAILED

    def to_tags(self) -> dict[str, str]:
        """The decision as MLflow tags (on the version and on the pipeline run)."""
        values = {
            tags.GATE_DECISION: self.decision.value,
            tags.GATE_REASON: self.reason.value,
            tags.GATE_MODEL: self.model,
            tags.GATE_METRIC: self.metric,
            tags.GATE_RULE: self.rule,
            tags.GATE_MESSAGE: self.message[: tags.ERROR_MESSAGE_LIMIT],
            tags.GATE_VERSION: self.version or "",
            tags.GATE_CHALLENGER_VALUE: _text(self.challenger_value),
            tags.GATE_CHAMPION_VERSION: self.champion_version or "",
            tags.GATE_CHAMPION_VALUE: _text(self.champion_value),
            tags.GATE_MARGIN: _text(self.margin),
            tags.GATE_APPROVED_BY: self.approved_by or "",
            tags.GATE_POINT: self.point or "",
        }
        return {k: v for k, v in values.items() if v}

    @classmethod
    def from_tags(cls, values: dict[str, str]) -> GateResult:
        """A decision read back from the tags :meth:`to_tags` wrote.

        Raises:
            ValueError: the tags hold no gate decision.
        """
        return cls(
            model=values[tags.GATE_MODEL],
            metric=values[tags.GATE_METRIC],
            rule=values.get(tags.GATE_RULE, ""),
            decision=Decision(values[tags.GATE_DECISION]),
            reason=Reason(values[tags.GATE_REASON]),
            message=values.get(tags.GATE_MESSAGE, ""),
            version=values.get(tags.GATE_VERSION) or None,
            challenger_value=_number(values.get(tags.GATE_CHALLENGER_VALUE)),
            champion_version=values.get(tags.GATE_CHAMPION_VERSION) or None,
            champion_value=_number(values.get(tags.GATE_CHAMPION_VALUE)),
            margin=_number(values.get(tags.GATE_MARGIN)),
            approved_by=values.get(tags.GATE_APPROVED_BY) or None,
            point=values.get(tags.GATE_POINT) or None,
        )


def rule_of(retrain: RetrainSpec) -> str:
    """The gate's rule in words."""
    better = "higher" if retrain.direction == "maximize" else "lower"
    return (
        f"{retrain.metric} ({better} is better) must beat the champion's by more than {retrain.min_improvement:g}; "
        f"approval {retrain.approval}"
    )


@dataclass(frozen=True)
class Contender:
    """A version and the gate metric its stage run logged (None when it logged none)."""

    version: str
    value: float | None
    run_id: str = ""
    """The stage run the value was read from."""


def compare(base: GateResult, retrain: RetrainSpec, challenger: Contender, champion: Contender | None) -> GateResult:
    """The decision for ``challenger`` (whose value is known) against ``champion`` (None: there is none yet).

    ``base`` carries the model, metric, rule and the challenger's version and value; the result
    says what happens to the aliases, and why.
    """
    model, metric, value = retrain.model, retrain.metric, challenger.value
    assert value is not None  # noqa: S101 - a challenger without its metric is decided before
    if champion is None:
        return _promote(
            base,
            retrain,
            Reason.FIRST_VERSION,
            f"version {challenger.version} is the first champion of '{model}' ({metric} {value:.6g})",
        )
    base = replace(base, champion_version=champion.version)
    if champion.version == challenger.version:
        return replace(
            base,
            decision=Decision.KEPT,
            reason=Reason.ALREADY_CHAMPION,
            champion_value=value,
            margin=0.0,
            message=f"version {challenger.version} of '{model}' is already the champion",
        )
    if champion.value is None:
        return replace(
            base,
            reason=Reason.CHAMPION_NO_METRIC,
            message=f"the champion, version {champion.version} of '{model}', has no metric '{metric}' on its stage "
            f"run {champion.run_id}, so the challenger (version {challenger.version}, {metric} {value:.6g}) cannot "
            "be compared; nothing moved. Compare them yourself and move the alias in MLflow, or fix retrain.metric.",
        )
    margin = value - champion.value if retrain.direction == "maximize" else champion.value - value
    base = replace(base, champion_value=champion.value, margin=margin)
    versus = (
        f"{metric} {value:.6g} vs champion version {champion.version}'s {champion.value:.6g} (margin {margin:+.6g})"
    )
    if margin > retrain.min_improvement and abs(margin) > TIE_TOLERANCE:
        return _promote(
            base, retrain, Reason.WON, f"version {challenger.version} wins: {versus} > {retrain.min_improvement:g}"
        )
    if abs(margin) <= TIE_TOLERANCE:
        reason, why = Reason.TIE, f"a tie: {versus}; a tie keeps the champion"
    elif margin > 0:
        reason, why = Reason.BELOW_MARGIN, f"better, but not by more than {retrain.min_improvement:g}: {versus}"
    else:
        reason, why = Reason.LOST, f"worse: {versus}"
    return replace(base, decision=Decision.KEPT, reason=reason, message=f"version {challenger.version} kept out, {why}")


def _promote(base: GateResult, retrain: RetrainSpec, reason: Reason, why: str) -> GateResult:
    if retrain.approval == "manual":
        return replace(
            base,
            decision=Decision.AWAITING_APPROVAL,
            reason=reason,
            message=f"{why}; awaiting approval before champion moves (nbops approve, or the DAG's approval task)",
        )
    return replace(base, decision=Decision.PROMOTED, reason=reason, message=f"{why}; champion moved")


def _text(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _number(text: str | None) -> float | None:
    return float(text) if text else None
