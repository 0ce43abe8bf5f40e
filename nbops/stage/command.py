"""``nbops exec-stage``: execute one stage attempt of one pipeline run.

The attempt's phases live in :mod:`nbops.stage.lifecycle`; this module runs them in order
under the attempt's signal handling and turns whatever happens into a
:class:`~nbops.stage.result.StageResult`.
"""

from __future__ import annotations

import time

from nbops.errors import InputError, NbopsError
from nbops.notebook.outcome import StageTimedOut, Terminated
from nbops.stage.cache import CacheHit
from nbops.stage.lifecycle import StageAttempt, log
from nbops.stage.recorder import RecorderLink, ReleaseCancelled
from nbops.stage.result import StageRequest, StageResult
from nbops.stage.signals import AttemptSignals
from nbops.status import StageStatus


def exec_stage(request: StageRequest) -> StageResult:
    """Run one stage attempt through its phases.

    Raises:
        InputError: bad input found in prepare, before anything was claimed or started.
        InfraError: the artifact store could not be read or claimed.
    """
    with AttemptSignals(Terminated, StageTimedOut) as signals:
        link = RecorderLink.from_env()
        attempt = StageAttempt(request, signals, link)
        phase = attempt.timed
        try:
            phase(attempt.prepare)
            phase(attempt.boot)
            try:
                phase(attempt.wait)
            except ReleaseCancelled:
                attempt.release_resources()
                return StageResult(
                    stage=request.stage,
                    run_id=request.run_id,
                    status=StageStatus.KILLED,
                    message="not started: the nbops run that launched it did not release it",
                )
            phase(attempt.locate)
            hit = attempt.cache_lookup()
            if hit is not None:
                attempt.release_resources()
                return _reuse(attempt, hit)
            phase(attempt.claim)
        except Terminated as exc:  # stopped before the notebook started: nothing to archive
            signals.defer()
            attempt.release_resources()
            return StageResult(
                stage=request.stage,
                run_id=request.run_id,
                status=StageStatus.KILLED,
                attempt=attempt.claimed.number if attempt.claimed else None,
                attempt_dir=attempt.claimed.location if attempt.claimed else None,
                duration_s=round(time.monotonic() - attempt.started, 3),
                message=f"terminated ({exc}) before the notebook started",
            )
        except BaseException:
            attempt.release_resources()
            raise
        for step in (attempt.run, attempt.archive, attempt.record, attempt.seal):
            phase(step)
        return attempt.result()


def _reuse(attempt: StageAttempt, hit: CacheHit) -> StageResult:
    """The phases of an attempt that reuses ``hit`` instead of running its notebook."""
    attempt.timed(attempt.claim)
    attempt.reuse(hit)
    for step in (attempt.record, attempt.seal):
        attempt.timed(step)
    return attempt.result()


def probe_reuse(request: StageRequest) -> tuple[StageAttempt, CacheHit] | None:
    """In this process, reading only the artifact store: the attempt ``request`` would reuse, or
    None (it must run). What ``nbops run`` and Airflow's workers ask before starting a stage
    command or a pod, so that a reused stage costs neither.

    Raises:
        InputError: bad input (the spec, the notebook, the parameters).
        InfraError: the artifact store cannot be read.
    """
    attempt = StageAttempt(request, None)
    attempt.prepare(execute=False)
    attempt.locate()
    hit = attempt.cache_lookup()
    return None if hit is None else (attempt, hit)


def complete_reuse(attempt: StageAttempt, hit: CacheHit) -> StageResult:
    """Record and seal, in this process, the ``cached`` attempt :func:`probe_reuse` found."""
    attempt.claim(export=False)
    attempt.reuse(hit)
    attempt.record()
    attempt.seal()
    return attempt.result()


def result_of_error(request: StageRequest, exc: NbopsError, started: float) -> StageResult:
    """A result for an attempt that failed before (or outside) execution."""
    return StageResult(
        stage=request.stage,
        run_id=request.run_id,
        status=StageStatus.INPUT_ERROR if isinstance(exc, InputError) else StageStatus.INFRA_FAILED,
        duration_s=round(time.monotonic() - started, 3),
        message=str(exc),
    )


__all__ = ["StageRequest", "StageResult", "complete_reuse", "exec_stage", "log", "probe_reuse", "result_of_error"]
