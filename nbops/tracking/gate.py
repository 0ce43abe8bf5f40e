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

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from nbops.errors import InfraError, InputError
from nbops.spec import RetrainSpec
from nbops.status import StageStatus
from nbops.tracking import query, record, tags
from nbops.tracking.decision import Contender, Decision, GateResult, Reason, compare, rule_of
from nbops.tracking.query import CHALLENGER, CHAMPION, champion_run_id, champion_version

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion


def decide(client: MlflowClient, retrain: RetrainSpec, experiment_id: str, run_id: str) -> GateResult:
    """The decision for pipeline run ``run_id`` (nothing is changed): the registry read here, the
    rule applied by :func:`nbops.tracking.decision.compare`.

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
    best = _best_point(client, retrain, experiment_id, run_id)
    if best is not None:
        base = replace(base, point=best.label, candidates=best.candidates)
    stage_run, judged = _stage_run_to_judge(client, retrain, experiment_id, run_id, base, best)
    if judged is not None:
        return judged
    found = [] if stage_run is None else query.versions(client, model, stage_run.info.run_id)
    if stage_run is None or not found:
        where = f"its stage run {stage_run.info.run_id}" if stage_run else "no succeeded stage run"
        return replace(
            base,
            message=f"stage '{retrain.stage}' of run {run_id} registered no version of '{model}' ({where}); nothing "
            f"moved. Register the model in that stage with nbops.log_model(..., registered_model_name='{model}').",
        )
    challenger = max(found, key=lambda v: int(v.version))
    base = replace(base, version=str(challenger.version))
    value = query.metric(stage_run, metric)
    if value is None:
        logged = ", ".join(sorted(stage_run.data.metrics)) or "none"
        return replace(
            base,
            reason=Reason.NO_METRIC,
            message=f"version {challenger.version} of '{model}': its stage run {stage_run.info.run_id} logged no "
            f"metric '{metric}' (it logged: {logged}); nothing moved. Log it in a `metrics` cell of stage "
            f"'{retrain.stage}' or fix retrain.metric.",
        )
    base = replace(base, challenger_value=value)
    decided = compare(base, retrain, Contender(str(challenger.version), value), _champion(client, model, metric))
    if best is None:
        return decided
    return replace(decided, message=f"{decided.message} (the sweep's best point by {metric}: {best.label})")


def _stage_run_to_judge(
    client: MlflowClient,
    retrain: RetrainSpec,
    experiment_id: str,
    run_id: str,
    base: GateResult,
    best: BestPoint | None = None,
) -> tuple[Run | None, GateResult | None]:
    """The stage run whose version is judged: the run's own (of a swept stage: the best point's),
    or for a reused stage the one it reused; with a decision already when that one's version was
    judged then (``reused``)."""
    if best is not None and best.cached is None:
        return best.run, None
    stage_run = None if best is not None else query.stage_run(client, experiment_id, run_id, retrain.stage)
    if stage_run is not None:
        return stage_run, None
    cached = (
        best.cached
        if best is not None
        else query.stage_run(client, experiment_id, run_id, retrain.stage, StageStatus.CACHED)
    )
    original = query.reused_run(client, cached) if cached is not None else None
    if cached is None or original is None:
        return None, None
    judged = [v for v in query.versions(client, retrain.model, original.info.run_id) if _judged(v)]
    if not judged:  # reused, but never judged (its run's gate failed or did not run): judge it now
        return original, None
    source = cached.data.tags.get(tags.REUSED_RUN, "an earlier run")
    return None, replace(
        base,
        decision=Decision.KEPT,
        reason=Reason.REUSED,
        version=str(max(int(v.version) for v in judged)),
        message=f"stage '{retrain.stage}' reused its attempt of run {source}, whose version that run's "
        "gate judged: no new version to judge",
    )


@dataclass(frozen=True)
class BestPoint:
    """Of a swept gate stage: the point whose version the gate judges, and the other points' versions."""

    label: str
    run: Run
    """Its stage run (for a reused point: the run it reused)."""
    cached: Run | None
    """Its own stage run when it reused another attempt."""
    candidates: tuple[str, ...]


def _best_point(client: MlflowClient, retrain: RetrainSpec, experiment_id: str, run_id: str) -> BestPoint | None:
    """Of a swept gate stage, the succeeded point with the best ``retrain.metric`` (the first in sweep
    order among equals; one without the metric only when none has it); None when not swept."""
    points = query.point_runs(client, experiment_id, run_id, retrain.stage)
    if not points:
        return None
    scored = []
    for own in points:
        cached = own if own.data.tags.get(tags.STATUS) == StageStatus.CACHED.value else None
        ran = (query.reused_run(client, own) if cached is not None else own) or own
        scored.append((query.metric(ran, retrain.metric), ran, cached, own.data.tags.get(tags.POINT_LABEL, "")))
    valued = [s for s in scored if s[0] is not None]
    sign = 1.0 if retrain.direction == "maximize" else -1.0
    _, run, cached, label = max(valued, key=lambda s: sign * float(s[0] or 0)) if valued else scored[0]
    others = [
        str(v.version)
        for _, ran, _, _ in scored
        if ran is not run
        for v in query.versions(client, retrain.model, ran.info.run_id)
    ]
    return BestPoint(label, run, cached, tuple(sorted(others, key=int)))


def _champion(client: MlflowClient, model: str, metric: str) -> Contender | None:
    """The champion and its metric, as logged on its stage run."""
    champion = champion_version(client, model)
    if champion is None:
        return None
    value = (
        query.metric(query.run(client, champion.run_id, "read the champion's stage run"), metric)
        if (champion.run_id)
        else None
    )
    return Contender(str(champion.version), value, champion.run_id or "")


def _judged(version: ModelVersion) -> bool:
    """Whether a gate decided on ``version`` (a decision other than a failure)."""
    decided = dict(version.tags).get(tags.GATE_DECISION)
    return bool(decided) and decided != Decision.FAILED.value


def apply(client: MlflowClient, result: GateResult, parent_run_id: str | None) -> GateResult:
    """Record ``result`` on the version and the pipeline run, then move the aliases as it says.

    The record comes first, so a failure between the two leaves a decision without its alias
    move, which deciding again completes, never an alias moved without its reasons. Deciding
    again for a version already judged (``already_champion`` after a retry, ``reused``) keeps
    the record that judged it.

    Raises:
        InfraError: the tracking store cannot be written.
    """
    _tag_candidates(client, result)
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
    # A rejection leaves the aliases as they are: `challenger` was set when the decision was made,
    # and another run's challenger may hold it since.
    if result.version is not None and result.reason is not Reason.REUSED and result.decision is not Decision.REJECTED:
        record.call(
            client.set_registered_model_alias, result.model, CHALLENGER, result.version, what="set the challenger alias"
        )
        if result.decision is Decision.PROMOTED:
            _still_champion(client, result)
            record.call(
                client.set_registered_model_alias,
                result.model,
                CHAMPION,
                result.version,
                what="move the champion alias",
            )
    return result


def _tag_candidates(client: MlflowClient, result: GateResult) -> None:
    """The versions the other points of a swept gate stage registered: tagged as candidates, never aliased."""
    for version in result.candidates:
        if version == result.version:
            continue
        note = f"another point of the sweep; the gate judged version {result.version} ({result.point})"
        record.call(
            client.set_model_version_tag, result.model, version, tags.GATE_CANDIDATE, note, what="tag a candidate"
        )


class ChampionMoved(InfraError):
    """Another gate (a concurrent run of the pipeline) moved ``champion`` after this gate read it:
    this decision was made against a champion that is no longer one. Decide again."""


def _still_champion(client: MlflowClient, result: GateResult) -> None:
    """Re-read ``champion`` right before moving it: refuse when it is no longer the version the
    decision was made against, so two gates deciding at once cannot both promote (MLflow has no
    compare-and-set on aliases; this narrows the window to the two calls).

    Raises:
        ChampionMoved: it changed since the decision.
    """
    now = _champion_now(client, result.model)
    if now != result.champion_version:
        raise ChampionMoved(
            f"the champion of '{result.model}' is version {now or '(none)'}, not {result.champion_version or '(none)'} "
            f"as when the gate decided on version {result.version}: another gate moved it meanwhile; "
            "the decision was not applied"
        )


def _champion_now(client: MlflowClient, model: str) -> str | None:
    """The version ``champion`` names now, read again (None before the first champion)."""
    current = champion_version(client, model)
    return str(current.version) if current is not None else None


def _has_decision(client: MlflowClient, model: str, version: str) -> bool:
    return tags.GATE_DECISION in dict(query.version(client, model, version).tags)


def _decided_for(client: MlflowClient, parent_run_id: str, version: str | None) -> bool:
    return bool(version) and query.run_tags(client, parent_run_id).get(tags.GATE_VERSION) == version


def approve(client: MlflowClient, model: str, version: str, who: str, reject: bool = False) -> GateResult:
    """Approve (or reject) the decision awaiting approval on version ``version`` of ``model``.

    Raises:
        InputError: the version awaits no approval, or (for an approval) the champion moved since
            the decision.
        InfraError: the tracking store cannot be used.
    """
    found = query.version(client, model, version)
    try:
        decided = GateResult.from_tags(dict(found.tags))
    except (KeyError, ValueError):
        raise InputError(f"version {version} of '{model}' has no gate decision; nothing to approve.") from None
    if decided.decision is not Decision.AWAITING_APPROVAL:
        raise InputError(
            f"version {version} of '{model}' is not awaiting approval: the gate's decision was "
            f"'{decided.decision}' ({decided.message})."
        )
    # A stale comparison cannot be approved; it can always be rejected (a rejection moves nothing).
    current = _champion_now(client, model)
    if not reject and current != decided.champion_version:
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


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "Decision",
    "GateResult",
    "Reason",
    "apply",
    "approve",
    "champion_run_id",
    "champion_version",
    "decide",
    "rule_of",
]
