"""The slot implementations nbops ships, and the one place that composes them (DESIGN §10).

| slot | implementation |
|---|---|
| stage attempt: ``upstream`` (the monitor's inputs) | :class:`nbops.plugins.champion.ChampionInputs` |
| stage attempt: ``reuse_key``, ``before_claim``, ``after_seal`` (index) | :class:`nbops.plugins.reuse.Reuse` |
| pipeline run: ``stage_done`` (the registry gate) | :class:`nbops.plugins.gate.Gate` |
| pipeline run: ``run_ended`` (the sweeps' leaderboards) | :class:`nbops.plugins.sweeps.Leaderboards` |
| pipeline run: ``run_ended`` (the failure alert) | :class:`nbops.plugins.alerting.FailureAlert` |

The stage lifecycle and the local runner import none of these; the commands get them from
:func:`attempt_hooks` and :func:`run_hooks`. Both backends close the pipeline run's record with
:func:`nbops.tracking.pipeline_run.close`.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from nbops.plugins.champion import ChampionInputs
from nbops.plugins.reuse import Reuse
from nbops.stage import command
from nbops.stage.command import Reusable, StageRequest, StageResult
from nbops.stage.slots import AttemptHooks, HookSet, RunHooks, RunHookSet


def attempt_hooks() -> AttemptHooks:
    """The slots of every stage attempt, filled as nbops ships them."""
    return HookSet([ChampionInputs(), Reuse()])


def run_hooks(alerts: bool = True) -> RunHooks:
    """The slots of a pipeline run under ``nbops run``; ``alerts`` false sends none (``nbops test``)."""
    from nbops.plugins.alerting import FailureAlert
    from nbops.plugins.gate import Gate
    from nbops.plugins.sweeps import Leaderboards

    return RunHookSet(
        [Gate(alert=alerts), Leaderboards(), *([FailureAlert()] if alerts else [])], attempt=attempt_hooks()
    )


def exec_stage(request: StageRequest) -> StageResult:
    """``nbops exec-stage``: one stage attempt with nbops's slots."""
    return command.exec_stage(request, attempt_hooks())


def stage_command(
    pipeline_file: Path | None,
    promoted: str | None,
    stage: str,
    run_id: str,
    params_json: str = "{}",
    *,
    point: int | None = None,
    force: bool = False,
    result_file: Path | None = None,
) -> StageResult:
    """``nbops exec-stage`` whole: check the request, run the attempt, write ``result_file``, log the
    outcome (and, for a failure, where it failed and where its executed notebook is). Whatever
    happens is a result; its ``exit_code`` is the command's."""
    from nbops.errors import InputError, NbopsError
    from nbops.status import StageStatus

    started = time.monotonic()
    request = StageRequest(pipeline_file=pipeline_file, stage=stage, run_id=run_id, promoted=promoted, point=point)
    try:
        if (pipeline_file is None) == (promoted is None):
            raise InputError("exec-stage needs exactly one of --pipeline FILE and --promoted LOCK_SHA256.")
        params: Any = json.loads(params_json)
        if not isinstance(params, dict):
            raise InputError(f"--params-json: expected a JSON object, got {type(params).__name__}.")
        result = exec_stage(replace(request, params=params, force=force))
    except json.JSONDecodeError as exc:
        result = command.result_of_error(request, InputError(f"--params-json: not valid JSON ({exc.msg})."), started)
    except NbopsError as exc:
        result = command.result_of_error(request, exc, started)
    except KeyboardInterrupt:  # a signal outside the attempt's own handling
        result = replace(
            command.result_of_error(request, NbopsError("interrupted"), started), status=StageStatus.KILLED
        )
    if result_file is not None:
        from nbops.storage.atomic import write_atomic

        write_atomic(result_file, result.to_json().encode("utf-8"))
    level = "done" if result.exit_code == 0 else ("skipped" if result.status is StageStatus.SKIPPED else "error")
    command.log(f"{level}: stage '{result.stage}' {result.message} (exit {result.exit_code})")
    for line in result.detail:
        command.log(f"  {line}")
    return result


def probe_reuse(request: StageRequest) -> Reusable | None:
    """The completed attempt ``request`` would reuse, found in this process (no stage command)."""
    return command.probe_reuse(request, attempt_hooks())


def complete_reuse(found: Reusable) -> StageResult:
    """Record and seal in this process the ``cached`` attempt :func:`probe_reuse` found."""
    return command.complete_reuse(found, attempt_hooks())


__all__ = ["attempt_hooks", "complete_reuse", "exec_stage", "probe_reuse", "run_hooks", "stage_command"]
