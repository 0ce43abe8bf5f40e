"""``nbops exec-stage``: execute one stage attempt of one pipeline run.

The driver: it chains the phases of :mod:`nbops.stage.lifecycle` (each takes the previous
phase's record and returns its own), under the attempt's signal handling, with the slots of
:mod:`nbops.stage.slots` filled by ``hooks``, and turns whatever happens into a
:class:`~nbops.stage.result.StageResult`. Who composes the hooks is :mod:`nbops.plugins`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from nbops.errors import InfraError, NbopsError
from nbops.notebook.outcome import StageTimedOut, Terminated
from nbops.stage import lifecycle
from nbops.stage.lifecycle import Workspace, log
from nbops.stage.phases import Located, Sealed
from nbops.stage.recorder import RecorderLink, ReleaseCancelled
from nbops.stage.result import StageRequest, StageResult
from nbops.stage.signals import AttemptSignals
from nbops.stage.slots import AttemptHooks, CacheHit
from nbops.status import ExitCode, StageStatus

T = TypeVar("T")


@dataclass
class _Clock:
    """When the attempt started (its time limit counts from its release) and each phase's seconds."""

    started: float = field(default_factory=time.monotonic)
    phases: dict[str, float] = field(default_factory=dict)

    def timed(self, name: str, phase: Callable[[], T]) -> T:
        began = time.monotonic()
        try:
            return phase()
        finally:
            self.phases[name] = round(time.monotonic() - began, 3)

    def elapsed(self) -> float:
        return round(time.monotonic() - self.started, 3)


def exec_stage(request: StageRequest, hooks: AttemptHooks) -> StageResult:
    """Run one stage attempt through its phases.

    Raises:
        InputError: bad input found in prepare, before anything was claimed or started.
        InfraError: the artifact store could not be read or claimed.
    """
    with AttemptSignals(Terminated, StageTimedOut) as signals:
        link = RecorderLink.from_env()
        clock = _Clock()
        workspace: Workspace | None = None
        try:
            prepared = clock.timed("prepare", lambda: lifecycle.prepare(request))
            workspace = clock.timed("boot", lambda: lifecycle.boot(prepared))
            if link is not None:  # started ahead of its upstream stages: wait to be released
                clock.timed("wait", link.wait_release)
                clock.started = time.monotonic()
            located = clock.timed("locate", lambda: lifecycle.locate(prepared, hooks))
            hit = lifecycle.reusable(located, hooks)
            if hit is not None:
                workspace.release()
                return _reuse(located, hit, hooks, clock, link)
            claimed = clock.timed("claim", lambda: lifecycle.claim(located, link))
        except ReleaseCancelled:
            _release(workspace)
            return StageResult(
                stage=request.stage,
                run_id=request.run_id,
                status=StageStatus.KILLED,
                message="not started: the nbops run that launched it did not release it",
            )
        except Terminated as exc:  # stopped before the notebook started: nothing to archive
            signals.defer()
            _release(workspace)
            return StageResult(
                stage=request.stage,
                run_id=request.run_id,
                status=StageStatus.KILLED,
                duration_s=clock.elapsed(),
                message=f"terminated ({exc}) before the notebook started",
            )
        except BaseException:
            _release(workspace)
            raise
        executed = clock.timed("run", lambda: lifecycle.run(claimed, workspace, signals, clock.started))
        archived = clock.timed("archive", lambda: lifecycle.archive(executed))
        recorded = clock.timed("record", lambda: lifecycle.record(archived))
        sealed = clock.timed("seal", lambda: lifecycle.seal(recorded))
        _after_seal(sealed, hooks)
        return result_of(sealed, clock.elapsed(), clock.phases)


def _release(workspace: Workspace | None) -> None:
    if workspace is not None:
        workspace.release()


def _reuse(
    located: Located, hit: CacheHit, hooks: AttemptHooks, clock: _Clock, link: RecorderLink | None, own: bool = True
) -> StageResult:
    """The phases of an attempt that reuses ``hit`` instead of running its notebook."""
    claimed = clock.timed("claim", lambda: lifecycle.claim(located, link, hit=hit, own=own))
    archived = lifecycle.archive(lifecycle.reuse(claimed))
    if own:
        log(f"stage '{located.prepared.label}': reused {hit.describe()}; no notebook ran")
    recorded = clock.timed("record", lambda: lifecycle.record(archived))
    sealed = clock.timed("seal", lambda: lifecycle.seal(recorded))
    _after_seal(sealed, hooks)
    return result_of(sealed, clock.elapsed(), clock.phases)


def _after_seal(sealed: Sealed, hooks: AttemptHooks) -> None:
    """The ``after_seal`` slot, for a sealed attempt only; what fails there is logged, the attempt stands."""
    if not sealed.succeeded:
        return
    try:
        hooks.after_seal(sealed)
    except InfraError as exc:
        log(str(exc))


def result_of(sealed: Sealed, duration_s: float, phases: dict[str, float]) -> StageResult:
    """How the attempt ended."""
    claimed, outcome = sealed.claimed, sealed.outcome
    return StageResult(
        stage=claimed.prepared.stage.name,
        run_id=claimed.prepared.request.run_id,
        status=outcome.status,
        attempt=claimed.attempt.number,
        point=claimed.prepared.point.to_json() if claimed.prepared.point is not None else None,
        attempt_dir=claimed.attempt.location,
        mlflow_run_id=sealed.mlflow_run_id,
        duration_s=duration_s,
        message=lifecycle.message(claimed.prepared, outcome),
        failed_cell=outcome.cell_index,
        phases=dict(phases),
        detail=_detail(sealed),
    )


def _detail(sealed: Sealed) -> list[str]:
    """Where a failed attempt failed (secrets masked), and where its executed notebook is."""
    if sealed.succeeded:
        return []
    redactor = sealed.claimed.prepared.redactor
    lines = [redactor.text(line) for line in sealed.outcome.where()]
    attempt = sealed.claimed.attempt
    if (attempt.workdir / "output.ipynb").exists():
        lines.append(f"executed notebook: {attempt.location.rstrip('/')}/output.ipynb")
    return lines


@dataclass(frozen=True)
class Reusable:
    """A completed attempt a stage may reuse, found by :func:`probe_reuse` without a stage command."""

    located: Located
    hit: CacheHit


def probe_reuse(request: StageRequest, hooks: AttemptHooks) -> Reusable | None:
    """In this process, reading only the artifact store: the attempt ``request`` would reuse, or
    None (it must run). What ``nbops run`` and Airflow's workers ask before starting a stage
    command or a pod, so that a reused stage costs neither.

    Raises:
        InputError: bad input (the spec, the notebook, the parameters).
        InfraError: the artifact store cannot be read.
    """
    located = lifecycle.locate(lifecycle.prepare(request, execute=False), hooks)
    hit = lifecycle.reusable(located, hooks)
    return None if hit is None else Reusable(located, hit)


def complete_reuse(found: Reusable, hooks: AttemptHooks) -> StageResult:
    """Record and seal, in this process, the ``cached`` attempt :func:`probe_reuse` found."""
    return _reuse(found.located, found.hit, hooks, _Clock(), link=None, own=False)


def result_of_error(request: StageRequest, exc: NbopsError, started: float) -> StageResult:
    """A result for an attempt that failed before (or outside) execution."""
    return StageResult(
        stage=request.stage,
        run_id=request.run_id,
        status={ExitCode.INPUT: StageStatus.INPUT_ERROR, ExitCode.SKIP: StageStatus.SKIPPED}.get(
            exc.exit_code, StageStatus.INFRA_FAILED
        ),
        duration_s=round(time.monotonic() - started, 3),
        message=str(exc),
    )


__all__ = [
    "Reusable",
    "StageRequest",
    "StageResult",
    "Workspace",
    "complete_reuse",
    "exec_stage",
    "log",
    "probe_reuse",
    "result_of",
    "result_of_error",
]
