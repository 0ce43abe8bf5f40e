"""The upstream attempts a stage consumes, resolved to the attempts that ran (DESIGN §5, §13).

A ``cached`` attempt stands for the attempt it reused: readers get that attempt's outputs and
name it as consumed, so that keys and lineage name the attempt that ran.
"""

from __future__ import annotations

from pathlib import Path

from nbops.errors import InputError
from nbops.graph import ancestors
from nbops.spec import Pipeline
from nbops.stage.slots import Upstream
from nbops.storage import Store, layout
from nbops.storage.lineage import attempt_that_ran
from nbops.storage.manifest import ManifestInput, file_sha256


def upstream_attempts(store: Store, pipeline: Pipeline, run_id: str, stage: str) -> Upstream:
    """Outputs of every completed ancestor in this run, and which attempt each came from (its
    manifest's hash as stored); a missing direct need is an input error."""
    found: dict[str, tuple[Path, ManifestInput]] = {}
    missing = []
    needs = pipeline.stage(stage).needs
    for up in sorted(ancestors(pipeline.needs(), stage)):
        done = store.completed(pipeline.name, run_id, up)
        if done is not None:
            found[up] = resolved(store, pipeline.name, run_id, up, done)
        elif up in needs:
            missing.append(up)
    if missing:
        names = ", ".join(f"'{m}'" for m in missing)
        raise InputError(
            f"stage '{stage}' needs {names}, which has no completed attempt (no manifest.json) in run {run_id} "
            f"under {store.run_location(pipeline.name, run_id)}. Run the upstream stage(s) first, "
            f"e.g. nbops run --run-id {run_id} --from {missing[0]}."
        )
    return found


def resolved(store: Store, pipeline: str, run_id: str, stage: str, done: Path) -> tuple[Path, ManifestInput]:
    """The outputs an upstream attempt stands for and the attempt to name as consumed: itself, or
    for a ``cached`` attempt the one it reused.

    Raises:
        InputError: the reused attempt is gone from the store or unreadable.
    """
    original, reused = attempt_that_ran(store, pipeline, stage, done)
    if reused is None:
        return done / "outputs", _consumed(store, pipeline, run_id, stage, done)
    consumed = ManifestInput(
        stage=stage, attempt=reused.attempt, manifest_sha256=reused.manifest_sha256, location=reused.location
    )
    return original / "outputs", consumed


def _consumed(store: Store, pipeline: str, run_id: str, stage: str, attempt_dir: Path) -> ManifestInput:
    """The upstream attempt in ``attempt_dir`` as a manifest input: the sha256 of its stored manifest bytes
    (the store checked and parsed them when it returned the attempt)."""
    number = layout.attempt_number(attempt_dir)
    return ManifestInput(
        stage=stage,
        attempt=number,
        manifest_sha256=file_sha256(attempt_dir / layout.MANIFEST),
        location=store.location(layout.attempt_rel(pipeline, run_id, stage, number)),
    )
