"""The leaderboard of each swept stage (:mod:`nbops.tracking.leaderboard`) in the ``run_ended`` slot:
logged on the pipeline run, its top points in ``nbops run``'s summary."""

from __future__ import annotations

from nbops.errors import NbopsError
from nbops.stage.slots import RunEnd, RunHooks, RunInfo


class Leaderboards(RunHooks):
    """Writes ``sweeps/<stage>.csv`` and ``.html`` once the run's record is closed; a store that refuses is reported."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def run_ended(self, run: RunInfo, end: RunEnd) -> None:
        if not any(spec.swept for spec in run.pipeline.spec.stages.values()):
            return
        from nbops.tracking import leaderboard
        from nbops.tracking.store import open_client

        try:
            client = open_client(run.tracking_uri)
            found = leaderboard.boards(client, run.experiment_id, run.pipeline, run.run_id)
            leaderboard.publish(client, run.parent_run_id, found)
        except NbopsError as exc:
            self.lines = [f"\nThe sweeps' leaderboards were not logged: {exc}"]
            return
        self.lines = [line for board in found for line in ["", *board.summary()]]

    def report(self) -> list[str]:
        return self.lines
