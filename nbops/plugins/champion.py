"""The monitor's inputs (DESIGN §12): the monitor notebook reads the pipeline run that trained
the current champion, found through the registry's lineage, instead of its own run's stages."""

from __future__ import annotations

import os
from pathlib import Path

from nbops.errors import InputError, NothingToDo
from nbops.graph import MONITOR_STAGE
from nbops.stage.phases import Prepared
from nbops.stage.slots import AttemptHooks, Upstream
from nbops.stage.upstream import resolved
from nbops.storage.manifest import ManifestInput

ENV_CHAMPION_RUN = "NBOPS_CHAMPION_RUN"
"""Set by ``nbops monitor``: the pipeline run that trained the champion, which it has looked up already."""


class ChampionInputs(AttemptHooks):
    """``nbops.input_dir(stage)`` in the monitor notebook: that stage of the champion's run."""

    def upstream(self, prepared: Prepared) -> Upstream | None:
        if prepared.stage.name != MONITOR_STAGE:
            return None
        return champion_attempts(prepared)


def champion_attempts(prepared: Prepared) -> Upstream:
    """Every completed stage of the pipeline run that trained the current champion.

    Raises:
        NothingToDo: there is no champion yet (exit 99: a monitor run on a fresh deployment is a
            skip, not a failure).
        InputError: the champion's run left no completed attempts here.
    """
    pipeline, store = prepared.pipeline, prepared.store
    retrain = pipeline.spec.retrain
    assert retrain is not None  # noqa: S101 - the spec requires `retrain:` with `monitor:`
    champion_run = os.environ.get(ENV_CHAMPION_RUN, "").strip()
    if not champion_run:
        from nbops.tracking.gate import champion_run_id
        from nbops.tracking.store import open_client

        champion_run = champion_run_id(open_client(prepared.uri), retrain.model) or ""
    if not champion_run:
        raise NothingToDo(
            f"{pipeline.path}: '{retrain.model}' has no champion yet, so the monitor has nothing to compare with; "
            "skipped. Run the pipeline first (its gate makes the first version champion)."
        )
    found: dict[str, tuple[Path, ManifestInput]] = {}
    for stage in pipeline.spec.stages:
        done = store.completed(pipeline.name, champion_run, stage)
        if done is not None:
            found[stage] = resolved(store, pipeline.name, champion_run, stage, done)
    if not found:
        raise InputError(
            f"the champion of '{retrain.model}' was trained by run {champion_run}, which has no completed attempt "
            f"under {store.run_location(pipeline.name, champion_run)}; the monitor cannot read its training data."
        )
    return found
