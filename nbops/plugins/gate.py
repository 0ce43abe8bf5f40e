"""The registry gate in the pipeline run's ``stage_done`` slot (DESIGN §12): once the gate's
stage is sealed, decide challenger against champion and move the aliases (:mod:`nbops.retrain`)."""

from __future__ import annotations

from nbops.errors import NbopsError
from nbops.retrain import describe, run_gate
from nbops.stage.slots import RunHooks, RunInfo, Verdict
from nbops.tracking.gate import GateResult


class Gate(RunHooks):
    """Runs the gate after ``retrain.stage``; a gate that cannot decide or failed fails that stage."""

    def __init__(self, alert: bool = True) -> None:
        self.alert = alert
        self.decided: GateResult | None = None

    def stage_done(self, run: RunInfo, stage: str) -> Verdict | None:
        from nbops.tracking.store import open_client

        retrain = run.pipeline.spec.retrain
        if retrain is None or stage != retrain.stage:
            return None
        try:
            decided = self.decided = run_gate(
                open_client(run.tracking_uri), run.pipeline, run.tracking_uri, run.run_id, self.alert
            )
        except NbopsError as exc:
            return Verdict(failure=f"retraining gate: {exc}", exit_code=exc.exit_code)
        failure = f"retraining gate: {decided.message}" if decided.failed else None
        return Verdict(note=f"nbops run: {describe(decided)}", failure=failure)

    def report(self) -> list[str]:
        return [f"\n{describe(self.decided)}"] if self.decided is not None else []
