"""The champion/challenger gate (DESIGN §12): decide from the registry, record, move the aliases.

After the stage named by ``retrain.stage`` succeeds, the version it registered becomes the
``challenger``. Its metric (as logged on its stage run) is compared with the ``champion``'s
(as logged on the champion's stage run): the challenger takes ``champion`` when it is better
by strictly more than ``min_improvement`` in the declared direction, or when there is no
champion yet. The decision, both values, the margin and the rule are written as tags on the
version and on the pipeline run. With ``approval: manual`` a winning challenger waits for
:func:`approve`.

Every outcome is a :class:`GateResult`; nothing here raises for a decision, only for a store
that cannot be used (:class:`nbops.errors.InfraError`) or an approval that does not apply
(:class:`nbops.errors.InputError`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from nbops.errors import InputError
from nbops.spec import RetrainSpec
from nbops.status import StageStatus
from nbops.tracking import record, tags

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion

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
        )


def rule_of(retrain: RetrainSpec) -> str:
    """The gate's rule in words."""
    better = "higher" if retrain.direction == "maximize" else "lower"
    return (
        f"{retrain.metric} ({better} is better) must beat the champion's by more than {retrain.min_improvement:g}; "
        f"approval {retrain.approval}"
    )


def decide(client: MlflowClient, retrain: RetrainSpec, experiment_id: str, run_id: str) -> GateResult:
    """The decision for pipeline run ``run_id`` (nothing is changed).

    Raises:
        InfraError: the tracking store cannot be read.
    """
    model, metric = retrain.model, retrain.metric
    base = GateResult(
        model=model,
        metric=metric,
        rule=rule_of(retrain),
        decision=Decision.FAILED,
        reason=Reason.NO_VERSION,
        message="",
    )
    stage_run = succeeded_stage_run(client, experiment_id, run_id, retrain.stage)
    if stage_run is None:
        cached = succeeded_stage_run(client, experiment_id, run_id, retrain.stage, StageStatus.CACHED)
        original = _reused_run(client, cached) if cached is not None else None
        if cached is not None and original is not None:
            judged = [v for v in _registered(client, model, original.info.run_id) if _judged(v)]
            if judged:
                source = cached.data.tags.get(tags.REUSED_RUN, "an earlier run")
                return replace(
                    base,
                    decision=Decision.KEPT,
                    reason=Reason.REUSED,
                    version=str(max(int(v.version) for v in judged)),
                    message=f"stage '{retrain.stage}' reused its attempt of run {source}, whose version that run's "
                    "gate judged: no new version to judge",
                )
            stage_run = original  # reused, but never judged (its run's gate failed or did not run): judge it now
    versions = [] if stage_run is None else _registered(client, model, stage_run.info.run_id)
    if stage_run is None or not versions:
        where = f"its stage run {stage_run.info.run_id}" if stage_run else "no succeeded stage run"
        return replace(
            base,
            message=f"stage '{retrain.stage}' of run {run_id} registered no version of '{model}' ({where}); nothing "
            f"moved. Register the model in that stage with nbops.log_model(..., registered_model_name='{model}').",
        )
    challenger = max(versions, key=lambda v: int(v.version))
    base = replace(base, version=str(challenger.version))
    value = stage_run.data.metrics.get(metric)
    if value is None or math.isnan(value):
        logged = ", ".join(sorted(stage_run.data.metrics)) or "none"
        return replace(
            base,
            reason=Reason.NO_METRIC,
            message=f"version {challenger.version} of '{model}': its stage run {stage_run.info.run_id} logged no "
            f"metric '{metric}' (it logged: {logged}); nothing moved. Log it in a `metrics` cell of stage "
            f"'{retrain.stage}' or fix retrain.metric.",
        )
    base = replace(base, challenger_value=value)
    champion = champion_version(client, model)
    if champion is None:
        return _promote(
            base,
            retrain,
            Reason.FIRST_VERSION,
            f"version {challenger.version} is the first champion of '{model}' ({metric} {value:.6g})",
        )
    base = replace(base, champion_version=str(champion.version))
    if str(champion.version) == str(challenger.version):
        return replace(
            base,
            decision=Decision.KEPT,
            reason=Reason.ALREADY_CHAMPION,
            champion_value=value,
            margin=0.0,
            message=f"version {challenger.version} of '{model}' is already the champion",
        )
    champion_value = _champion_metric(client, champion, metric)
    if champion_value is None:
        return replace(
            base,
            reason=Reason.CHAMPION_NO_METRIC,
            message=f"the champion, version {champion.version} of '{model}', has no metric '{metric}' on its stage run "
            f"{champion.run_id}, so the challenger (version {challenger.version}, {metric} {value:.6g}) cannot be "
            "compared; nothing moved. Compare them yourself and move the alias in MLflow, or fix retrain.metric.",
        )
    margin = value - champion_value if retrain.direction == "maximize" else champion_value - value
    base = replace(base, champion_value=champion_value, margin=margin)
    versus = (
        f"{metric} {value:.6g} vs champion version {champion.version}'s {champion_value:.6g} (margin {margin:+.6g})"
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


def apply(client: MlflowClient, result: GateResult, parent_run_id: str | None) -> GateResult:
    """Record ``result`` on the version and the pipeline run, then move the aliases as it says.

    The record comes first, so a failure between the two leaves a decision without its alias
    move, which deciding again completes, never an alias moved without its reasons. Deciding
    again for a version already judged (``already_champion`` after a retry, ``reused``) keeps
    the record that judged it.

    Raises:
        InfraError: the tracking store cannot be written.
    """
    rejudged = result.reason in (Reason.ALREADY_CHAMPION, Reason.REUSED)
    if result.version is not None and not (rejudged and _has_decision(client, result.model, result.version)):
        for key, value in result.to_tags().items():
            record.call(
                client.set_model_version_tag,
                result.model,
                result.version,
                key,
                value,
                what="tag the version with the gate's decision",
            )
    if parent_run_id and not (rejudged and _decided_for(client, parent_run_id, result.version)):
        record.set_tags(client, parent_run_id, result.to_tags())
    if result.version is not None and result.reason is not Reason.REUSED:
        record.call(
            client.set_registered_model_alias, result.model, CHALLENGER, result.version, what="set the challenger alias"
        )
        if result.decision is Decision.PROMOTED:
            record.call(
                client.set_registered_model_alias,
                result.model,
                CHAMPION,
                result.version,
                what="move the champion alias",
            )
    return result


def _has_decision(client: MlflowClient, model: str, version: str) -> bool:
    found = record.call(client.get_model_version, model, version, what=f"read version {version} of '{model}'")
    return tags.GATE_DECISION in dict(found.tags)


def _decided_for(client: MlflowClient, parent_run_id: str, version: str | None) -> bool:
    run = record.call(client.get_run, parent_run_id, what="read the pipeline run")
    return bool(version) and run.data.tags.get(tags.GATE_VERSION) == version


def approve(client: MlflowClient, model: str, version: str, who: str, reject: bool = False) -> GateResult:
    """Approve (or reject) the decision awaiting approval on version ``version`` of ``model``.

    Raises:
        InputError: the version awaits no approval, or the champion moved since the decision.
        InfraError: the tracking store cannot be used.
    """
    found = record.call(client.get_model_version, model, version, what=f"read version {version} of '{model}'")
    try:
        decided = GateResult.from_tags(dict(found.tags))
    except (KeyError, ValueError):
        raise InputError(f"version {version} of '{model}' has no gate decision; nothing to approve.") from None
    if decided.decision is not Decision.AWAITING_APPROVAL:
        raise InputError(
            f"version {version} of '{model}' is not awaiting approval: the gate's decision was "
            f"'{decided.decision}' ({decided.message})."
        )
    now = champion_version(client, model)
    current = str(now.version) if now is not None else None
    if current != decided.champion_version:
        raise InputError(
            f"version {version} of '{model}' was compared with champion version {decided.champion_version or 'none'}, "
            f"but the champion is now version {current}; the comparison no longer holds. Run the gate again "
            "(nbops gate --run-id ...) for a fresh decision."
        )
    if reject:
        result = replace(
            decided, decision=Decision.REJECTED, approved_by=who, message=f"{decided.message}; rejected by {who}"
        )
    else:
        result = replace(
            decided,
            decision=Decision.PROMOTED,
            approved_by=who,
            message=f"{decided.message.split('; awaiting')[0]}; approved by {who}, champion moved",
        )
    return result


def succeeded_stage_run(
    client: MlflowClient, experiment_id: str, run_id: str, stage: str, status: StageStatus = StageStatus.SUCCEEDED
) -> Run | None:
    """The last attempt's stage run of ``stage`` in pipeline run ``run_id`` that ended ``status``."""
    runs = record.call(
        client.search_runs,
        [experiment_id],
        filter_string=(
            f"tags.`{tags.RUN_ID}` = '{run_id}' and tags.`{tags.STAGE}` = '{stage}' "
            f"and tags.`{tags.STATUS}` = '{status.value}'"
        ),
        max_results=100,
        what=f"find the stage run of '{stage}'",
    )
    if not runs:
        return None
    return max(runs, key=lambda r: int(r.data.tags.get(tags.ATTEMPT) or 0))


def champion_version(client: MlflowClient, model: str) -> ModelVersion | None:
    """The version the ``champion`` alias names, or None (no such alias, or no such model yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        return record.call(client.get_model_version_by_alias, model, CHAMPION, what=f"read the champion of '{model}'")


def _reused_run(client: MlflowClient, cached: Run) -> Run | None:
    """The stage run of the attempt a ``cached`` stage run reused."""
    from mlflow.exceptions import MlflowException

    original = cached.data.tags.get(tags.REUSED_MLFLOW_RUN)
    if not original:
        return None
    try:
        return client.get_run(original)
    except MlflowException:  # recorded into another tracking store
        return None


def _judged(version: ModelVersion) -> bool:
    """Whether a gate decided on ``version`` (a decision other than a failure)."""
    decided = dict(version.tags).get(tags.GATE_DECISION)
    return bool(decided) and decided != Decision.FAILED.value


def _registered(client: MlflowClient, model: str, stage_run_id: str) -> list[ModelVersion]:
    found = record.call(
        client.search_model_versions,
        f"name = '{model}' and run_id = '{stage_run_id}'",
        what=f"find the versions of '{model}' registered by the stage run",
    )
    return list(found)


def _champion_metric(client: MlflowClient, champion: ModelVersion, metric: str) -> float | None:
    if not champion.run_id:
        return None
    run = record.call(client.get_run, champion.run_id, what="read the champion's stage run")
    value = run.data.metrics.get(metric)
    return None if value is None or math.isnan(value) else float(value)


def _text(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _number(text: str | None) -> float | None:
    return float(text) if text else None


def champion_run_id(client: MlflowClient, model: str) -> str | None:
    """The nbops pipeline run that trained the current champion (from the version's lineage
    tags, else its stage run's), or None when there is no champion."""
    champion = champion_version(client, model)
    if champion is None:
        return None
    run_id = dict(champion.tags).get(tags.RUN_ID)
    if run_id:
        return str(run_id)
    if not champion.run_id:
        return None
    run = record.call(client.get_run, champion.run_id, what="read the champion's stage run")
    found = run.data.tags.get(tags.RUN_ID)
    return str(found) if found else None
