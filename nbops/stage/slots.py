"""Where other concerns plug into a stage attempt and a pipeline run (DESIGN §10), declared once.

    stage attempt:  prepare -> [upstream] -> locate -> [reuse] -> claim -> run -> archive -> record
                    -> seal -> [after_seal]
    pipeline run:   schedule attempts -> [stage_done] per sealed stage -> close -> [run_ended]

The stage lifecycle and the local runner call these slots and import none of their
implementations: reuse of a completed attempt, the monitor's inputs read from the champion's
run, the registry gate after its stage, the failure alert (:mod:`nbops.plugins`, which composes
them for the commands). A slot's default does nothing, so an implementation overrides only the
slots it fills.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nbops.status import ExitCode
from nbops.storage.manifest import Manifest, ManifestInput, ReusedAttempt

if TYPE_CHECKING:
    from nbops.spec import Pipeline
    from nbops.stage.phases import Located, Prepared, Sealed
    from nbops.status import PipelineOutcome

Upstream = Mapping[str, tuple[Path, ManifestInput]]
"""Per upstream stage: the outputs it stands for and the attempt to name as consumed."""


@dataclass(frozen=True)
class CacheHit:
    """A completed attempt whose key matches: what a ``cached`` attempt stands for."""

    key: str
    run_id: str
    attempt_dir: Path
    manifest: Manifest
    manifest_sha256: str
    location: str

    def reused(self) -> ReusedAttempt:
        """The reference a ``cached`` attempt's manifest keeps."""
        return ReusedAttempt(
            run_id=self.run_id,
            attempt=self.manifest.attempt,
            manifest_sha256=self.manifest_sha256,
            location=self.location,
            mlflow_run_id=self.manifest.mlflow_run_id,
        )

    def describe(self) -> str:
        """``attempt 1 of run 20261123T...``."""
        return f"attempt {self.manifest.attempt} of run {self.run_id}"


class AttemptHooks:
    """The slots of one stage attempt. Subclass and override the slots you fill."""

    def upstream(self, prepared: Prepared) -> Upstream | None:
        """The attempts this stage reads instead of its ancestors in this run (the monitor reads the
        champion's run), or None for the usual ones.

        Raises:
            NbopsError: the inputs cannot be found; its exit code is the stage command's.
        """
        return None

    def reuse_key(self, located: Located) -> str | None:
        """The key a completed attempt must match to be reused, recorded in the manifest; None: never reused."""
        return None

    def before_claim(self, located: Located, key: str) -> CacheHit | None:
        """A completed attempt to reuse instead of running (looked up only when not forced)."""
        return None

    def after_seal(self, sealed: Sealed) -> None:
        """The attempt is sealed (its manifest stored): index it, seal what it registered, ...

        Raises:
            InfraError: logged by the stage command; the sealed attempt stands.
        """


class HookSet(AttemptHooks):
    """Several implementations as one: the first answer wins; ``after_seal`` reaches all, in order."""

    def __init__(self, hooks: Sequence[AttemptHooks]) -> None:
        self.hooks = tuple(hooks)

    def upstream(self, prepared: Prepared) -> Upstream | None:
        return next((found for h in self.hooks if (found := h.upstream(prepared)) is not None), None)

    def reuse_key(self, located: Located) -> str | None:
        return next((key for h in self.hooks if (key := h.reuse_key(located)) is not None), None)

    def before_claim(self, located: Located, key: str) -> CacheHit | None:
        return next((hit for h in self.hooks if (hit := h.before_claim(located, key)) is not None), None)

    def after_seal(self, sealed: Sealed) -> None:
        for hook in self.hooks:
            hook.after_seal(sealed)


@dataclass(frozen=True)
class RunInfo:
    """The pipeline run the run slots are called for."""

    pipeline: Pipeline
    run_id: str
    run_date: str
    trigger: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str


@dataclass(frozen=True)
class Verdict:
    """What a run slot concluded about a sealed stage."""

    note: str = ""
    """A line for the run's progress log."""
    failure: str | None = None
    """Why the stage counts as failed after all (its descendants do not run)."""
    exit_code: ExitCode = ExitCode.NOTEBOOK
    """The run's exit code when this failure is its first."""


@dataclass(frozen=True)
class RunEnd:
    """How the run ended, once its record is closed."""

    outcome: PipelineOutcome
    why: str
    """What failed or stopped it (empty for a success)."""


class RunHooks:
    """The slots of one pipeline run under the local runner. Subclass and override the slots you fill."""

    attempt: AttemptHooks = AttemptHooks()
    """The slots of the attempts the runner records in its own process (a reuse needs no stage command)."""

    def stage_done(self, run: RunInfo, stage: str) -> Verdict | None:
        """``stage`` is sealed (run or reused): None, or what follows from it (a line to show, a failure)."""
        return None

    def run_ended(self, run: RunInfo, end: RunEnd) -> None:
        """The run's record is closed; what fails here is only logged."""

    def report(self) -> list[str]:
        """Lines for the run's summary, after the stage table."""
        return []


class RunHookSet(RunHooks):
    """Several run slot implementations as one, called in order."""

    def __init__(self, hooks: Sequence[RunHooks], attempt: AttemptHooks) -> None:
        self.hooks = tuple(hooks)
        self.attempt = attempt

    def stage_done(self, run: RunInfo, stage: str) -> Verdict | None:
        verdicts = [v for h in self.hooks if (v := h.stage_done(run, stage)) is not None]
        if not verdicts:
            return None
        note = "\n".join(v.note for v in verdicts if v.note)
        failed = next((v for v in verdicts if v.failure), None)
        if failed is None:
            return Verdict(note=note)
        return Verdict(note=note, failure=failed.failure, exit_code=failed.exit_code)

    def run_ended(self, run: RunInfo, end: RunEnd) -> None:
        for hook in self.hooks:
            hook.run_ended(run, end)

    def report(self) -> list[str]:
        return [line for hook in self.hooks for line in hook.report()]
