"""Which attempt a completed attempt stands for: itself, or for a ``cached`` attempt (whose
``outputs/`` is empty) the attempt it reused. Stages and the notebook API read inputs through it,
so both follow a reuse to the files that were made."""

from __future__ import annotations

from pathlib import Path

from nbops.errors import InputError
from nbops.storage.base import Store
from nbops.storage.manifest import ReusedAttempt, read_manifest


def attempt_that_ran(store: Store, pipeline: str, stage: str, done: Path) -> tuple[Path, ReusedAttempt | None]:
    """The directory of the attempt that ran for the completed attempt ``done``, and the reuse it
    followed (None when ``done`` ran itself).

    Raises:
        InputError: the reused attempt is gone from the store or unreadable.
    """
    reused = read_manifest(done).reused
    if reused is None:
        return done, None
    original = store.attempt_dir(pipeline, reused.run_id, stage, reused.attempt)
    if original is None:
        raise InputError(
            f"{done}: stage '{stage}' reused attempt {reused.attempt} of run {reused.run_id}, which has no manifest "
            f"in the store any more ({reused.location}); re-run it with nbops run --force {stage}."
        )
    return original, reused
