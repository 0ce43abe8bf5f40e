"""The upstream attempts a stage consumes, resolved to the attempts that ran (DESIGN §5, §13).

A ``cached`` attempt stands for the attempt it reused: readers get that attempt's outputs and
name it as consumed, so that keys and lineage name the attempt that ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbops.errors import InputError
from nbops.graph import ancestors
from nbops.spec import Pipeline
from nbops.stage.slots import Upstream
from nbops.storage import Store, layout
from nbops.storage.lineage import attempt_that_ran
from nbops.storage.manifest import ManifestInput, PointRef, file_sha256
from nbops.storage.points import completed_points
from nbops.sweep import unit


def upstream_attempts(store: Store, pipeline: Pipeline, run_id: str, stage: str) -> Upstream:
    """Outputs of every completed ancestor in this run, and which attempt each came from (its
    manifest's hash as stored); a swept ancestor gives one entry per point, keyed
    ``stage/point-<id>`` in point order. A missing direct need (or point of one) is an input error."""
    found: dict[str, tuple[Path, ManifestInput]] = {}
    missing = []
    needs = pipeline.stage(stage).needs
    for up in sorted(ancestors(pipeline.needs(), stage)):
        if pipeline.stage(up).swept:
            swept, absent = _points(store, pipeline, run_id, up)
            found.update(swept)
            missing += [f"{up}[{i}]" for i in absent] if up in needs else []
            continue
        done = store.completed(pipeline.name, run_id, up)
        if done is not None:
            found[up] = resolved(store, pipeline.name, run_id, up, done)
        elif up in needs:
            missing.append(up)
    if missing:
        names = ", ".join(f"'{m}'" for m in missing)
        first = missing[0].split("[")[0]
        raise InputError(
            f"stage '{stage}' needs {names}, which has no completed attempt (no manifest.json) in run {run_id} "
            f"under {store.run_location(pipeline.name, run_id)}. Run the upstream stage(s) first, "
            f"e.g. nbops run --run-id {run_id} --from {first}."
        )
    return found


def _points(
    store: Store, pipeline: Pipeline, run_id: str, stage: str
) -> tuple[dict[str, tuple[Path, ManifestInput]], list[int]]:
    """The completed points of a swept stage in this run, in point order, and the indices of those missing."""
    done, missing = completed_points(store, pipeline, run_id, stage)
    found: dict[str, tuple[Path, ManifestInput]] = {}
    for point, attempt in done:
        where = unit(stage, point.id)
        path, consumed = resolved(store, pipeline.name, run_id, where, attempt)
        found[where] = (path, consumed.model_copy(update={"stage": stage, "point": PointRef(**point.to_json())}))
    return found, missing


def grouped(
    inputs: Mapping[str, Path], consumed: Sequence[ManifestInput]
) -> tuple[dict[str, Path], dict[str, list[tuple[dict[str, Any], Path]]]]:
    """What the notebook API gets: each unswept upstream's outputs by stage, and each swept one's as
    ``(parameters, outputs)`` pairs in point order (``inputs`` and ``consumed`` are in the same order)."""
    plain: dict[str, Path] = {}
    swept: dict[str, list[tuple[dict[str, Any], Path]]] = {}
    for (name, path), record in zip(inputs.items(), consumed, strict=True):
        if record.point is None:
            plain[name] = path
        else:
            swept.setdefault(record.stage, []).append((dict(record.point.parameters), path))
    return plain, swept


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
