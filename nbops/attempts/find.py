"""Find a stage attempt of a run on the pipeline's store, local or remote, sealed or not.

An attempt is named by its run (the run id ``nbops run`` printed; the newest run when none is
given), its unit (``stage``, or ``stage/point-<id>`` for a point of a sweep) and its number (the
newest when none is given). Its records are its start record (``attempt.json``, written when it
was claimed), its manifest (a sealed one) and its executed notebook, read from the store
itself, so a stage still running in a pod is seen as far as it has saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nbops.errors import InputError
from nbops.storage import layout
from nbops.storage.manifest import Manifest, parse_manifest
from nbops.storage.start import START, AttemptStart, parse_start
from nbops.sweep import unit

if TYPE_CHECKING:
    from nbops.spec import Pipeline
    from nbops.storage import Store

NOTEBOOK = "output.ipynb"
HTML = "output.html"


@dataclass(frozen=True)
class AttemptRef:
    """One attempt of a unit in a run, on a store."""

    store: Store
    pipeline: str
    run_key: str
    unit: str
    number: int

    @property
    def rel(self) -> str:
        """Its place under the store's root."""
        return layout.attempt_rel(self.pipeline, self.run_key, self.unit, self.number)

    @property
    def location(self) -> str:
        """Its place as a path or URL, for messages."""
        return self.store.location(self.rel)

    def read(self, name: str) -> bytes | None:
        """The bytes of its file ``name`` as stored now, or None.

        Raises:
            InfraError: the store cannot be read.
        """
        return self.store.read_bytes(f"{self.rel}/{name}")

    def start(self) -> AttemptStart | None:
        """Its start record, or None (an attempt recorded before start records existed, or one being claimed).

        Raises:
            InfraError: the store cannot be read or the record is damaged.
        """
        raw = self.read(START)
        return None if raw is None else parse_start(raw, f"{self.location}/{START}")

    def manifest(self) -> Manifest | None:
        """Its manifest, or None: the attempt has not succeeded (yet).

        Raises:
            InputError: the manifest is damaged.
            InfraError: the store cannot be read.
        """
        raw = self.read(layout.MANIFEST)
        return None if raw is None else parse_manifest(raw, f"{self.location}/{layout.MANIFEST}")

    def notebook(self) -> bytes | None:
        """Its executed notebook as saved so far (the whole of it once the attempt ended), or None."""
        return self.read(NOTEBOOK)

    def describe(self) -> str:
        """``stage 'train' attempt 2 of run 20261203T...``."""
        return f"stage '{self.unit}' attempt {self.number} of run {self.run_key}"


def run_key_of(store: Store, pipeline: Pipeline, run: str | None) -> str:
    """The run key of ``run`` (a run id as ``nbops run`` printed it), or of the newest run when None.

    Raises:
        InputError: no run yet, or no run of that id under the store (the newest are named).
    """
    if run is None:
        newest = store.latest_run_key(pipeline.name)
        if newest is None:
            raise InputError(
                f"pipeline '{pipeline.name}' has no run under {store.url} yet; run it with: nbops run {pipeline.path}"
            )
        return newest
    key = layout.run_key(run)
    if not any(store.attempt_numbers(pipeline.name, key, u) for u in _units_to_probe(store, pipeline, key)):
        raise InputError(
            f"run '{run}': no such run of pipeline '{pipeline.name}' under {store.url} "
            f"(the newest is {store.latest_run_key(pipeline.name) or 'none'}); give a run id as nbops run printed it."
        )
    return key


def _units_to_probe(store: Store, pipeline: Pipeline, key: str) -> list[str]:
    """Units whose attempts would show the run exists: its unswept stages, or one point of each swept one."""
    found: list[str] = []
    for name in pipeline.spec.stages:
        if pipeline.stage(name).swept:
            found += units_of(store, pipeline, key, name)[:1]
        else:
            found.append(name)
    return found


def units_of(store: Store, pipeline: Pipeline, key: str, stage: str) -> list[str]:
    """The units of ``stage`` in the run: the stage itself, or each of its points in sweep order (a
    ``foreach_from`` list not written yet: none)."""
    from nbops.storage.points import points_of

    if not pipeline.stage(stage).swept:
        return [stage]
    try:
        return [unit(stage, p.id) for p in points_of(pipeline, stage, store, key)]
    except InputError:
        return []


def attempt(store: Store, pipeline: Pipeline, key: str, unit_name: str, number: int | None = None) -> AttemptRef:
    """Attempt ``number`` of ``unit_name`` in run ``key`` (the newest when None).

    Raises:
        InputError: the stage is unknown, or has no such attempt in the run.
    """
    stage = unit_name.split("/", 1)[0]
    if stage not in pipeline.spec.stages:
        raise InputError(f"stage '{stage}': not a stage of {pipeline.path} (stages: {', '.join(pipeline.spec.stages)})")
    numbers = store.attempt_numbers(pipeline.name, key, unit_name)
    if not numbers:
        raise InputError(f"stage '{unit_name}' has no attempt in run {key} under {store.url}; it did not start there.")
    if number is None:
        number = numbers[-1]
    elif number not in numbers:
        raise InputError(f"stage '{unit_name}' has no attempt {number} in run {key} (attempts: {numbers}).")
    return AttemptRef(store, pipeline.name, key, unit_name, number)


def that_ran(ref: AttemptRef, manifest: Manifest | None = None) -> AttemptRef:
    """``ref``, or for a ``cached`` attempt the attempt it reused (which ran the notebook). ``manifest``:
    ``ref``'s, when the caller has read it already (it is not read again).

    Raises:
        InputError: the reused attempt's run is gone from the store.
    """
    manifest = manifest if manifest is not None else ref.manifest()
    reused = manifest.reused if manifest is not None else None
    if reused is None:
        return ref
    return AttemptRef(ref.store, ref.pipeline, layout.run_key(reused.run_id), ref.unit, reused.attempt)


def named(
    store: Store, pipeline: Pipeline, stage: str, run: str | None, number: int | None, point: int | None
) -> AttemptRef:
    """The attempt a command line names: ``stage`` (with ``point``, the index of a point of a swept
    stage) in run ``run`` (the newest when None), attempt ``number`` (the newest when None).

    Raises:
        InputError: an unknown stage or run, no such attempt, a swept stage without a point (the
            points are named), a point out of range or given to a stage that is not swept.
    """
    from nbops.storage.points import points_of

    resolved = pipeline.stage(stage)
    if stage not in pipeline.spec.stages:
        raise InputError(f"stage '{stage}': not a stage of {pipeline.path} (stages: {', '.join(pipeline.spec.stages)})")
    key = run_key_of(store, pipeline, run)
    if not resolved.swept:
        if point is not None:
            raise InputError(f"stage '{stage}' is not swept (no grid, foreach or foreach_from); leave out --point.")
        return attempt(store, pipeline, key, stage, number)
    found = points_of(pipeline, stage, store, key)
    if point is None or not 0 <= point < len(found):
        listed = "; ".join(f"{p.index}: {p.label(stage)}" for p in found[:20]) + ("; ..." if len(found) > 20 else "")
        given = "name one" if point is None else f"--point {point} is out of range; name one"
        raise InputError(
            f"stage '{stage}' is swept over {len(found)} points in run {key}; {given} with --point INDEX ({listed})."
        )
    return attempt(store, pipeline, key, unit(stage, found[point].id), number)


def open_named(
    pipeline_file: Path | None, stage: str, run: str | None, number: int | None, point: int | None
) -> tuple[Pipeline, AttemptRef]:
    """The pipeline (``pipeline_file``, else found upward as the notebook API finds it) and the attempt
    the command line names (:func:`named`) on its store.

    Raises:
        InputError: a bad pipeline file, or see :func:`named`.
        InfraError: the store cannot be read.
    """
    from nbops.api import PIPELINE_FILE, resolve_pipeline_file
    from nbops.spec import load_pipeline
    from nbops.storage import open_store

    pipeline = load_pipeline(pipeline_file if pipeline_file is not None else resolve_pipeline_file(Path(PIPELINE_FILE)))
    store = open_store(pipeline.root)
    return pipeline, named(store, pipeline, stage, run, number, point)
