"""The ``failure`` alert in the pipeline run's ``run_ended`` slot (DESIGN §12)."""

from __future__ import annotations

from nbops import alerts
from nbops.stage.slots import RunEnd, RunHooks, RunInfo
from nbops.status import PipelineOutcome


class FailureAlert(RunHooks):
    """Sends the spec's ``failure`` alert when a run failed or was stopped (a failing alert is only logged)."""

    def run_ended(self, run: RunInfo, end: RunEnd) -> None:
        if end.outcome is PipelineOutcome.SUCCEEDED:
            return
        link = None
        if run.parent_run_id and run.experiment_id:
            link = alerts.mlflow_link(run.tracking_uri, run.experiment_id, run.parent_run_id)
        alerts.send(
            run.pipeline.spec.alerts,
            alerts.Alert(
                event="failure",
                title=f"{run.pipeline.name}: run {run.run_id} failed",
                body=f"{run.trigger} on {run.run_date}: {end.why or 'did not finish'}",
                pipeline=run.pipeline.name,
                run_id=run.run_id,
                link=link,
            ),
        )
