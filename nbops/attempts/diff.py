"""``nbops diff RUN_A RUN_B``: two runs of a pipeline compared stage by stage (DESIGN §18).

For each unit (a stage, or a point ``stage/point-<id>`` of a swept stage, matched by point id) in
either run, the newest attempt of each run is compared section by section: parameters (with
where each value came from), metrics (with deltas), inputs (the data each upstream attempt
passed), the notebook source and its executed outputs (cell by cell, with nbdime), the files it
carried, the environment, the commit, and how it ended. A ``cached`` attempt is followed to the
attempt that ran its notebook for the notebook, its outputs and its status, and shown as cached.
A unit that started in one run only is a difference.

The result is a :class:`RunDiff`; its ``exit_code`` is the command's: 0 nothing differs, 1
something does. Errors: ``InputError`` (exit 2) for an unknown run or stage or a bad pipeline
file, ``InfraError`` (exit 3) when the store cannot be read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from nbops.attempts import diff_notebook, diff_read, diff_sections
from nbops.attempts.diff_read import Records, Side
from nbops.attempts.diff_sections import Section, Upstream
from nbops.attempts.find import run_key_of, units_of
from nbops.errors import InputError
from nbops.lock import notebook_rel
from nbops.storage import open_store

if TYPE_CHECKING:
    from nbops.spec import Pipeline
    from nbops.storage import Store

SECTIONS = ("parameters", "metrics", "inputs", "source", "outputs", "files", "environment", "commit", "status")
"""Every section of a unit's comparison, in the order shown."""


@dataclass(frozen=True)
class UnitDiff:
    """One unit compared: its attempt in each run (None: it did not start there) and the sections."""

    unit: str
    a: Side | None
    b: Side | None
    sections: tuple[Section, ...] = ()

    @property
    def same(self) -> bool:
        """Whether it started in both runs and every section is the same."""
        return self.a is not None and self.b is not None and all(s.same for s in self.sections)


@dataclass(frozen=True)
class RunDiff:
    """Two runs of a pipeline compared."""

    pipeline: str
    store: str
    run_a: str
    run_b: str
    units: tuple[UnitDiff, ...]

    @property
    def same(self) -> bool:
        """Whether nothing differs."""
        return all(u.same for u in self.units)

    @property
    def exit_code(self) -> int:
        """0 when nothing differs, 1 when something does."""
        return 0 if self.same else 1

    def to_text(self) -> str:
        """Readable text: per unit, what differs and a line of what is the same."""
        from nbops.attempts import diff_render

        return diff_render.text(self)

    def to_json(self) -> str:
        """The ``nbops.diff/1`` document."""
        from nbops.attempts import diff_render

        return diff_render.to_json(self)

    def to_html(self) -> str:
        """A self-contained page: no scripts, no remote loads, every value escaped."""
        from nbops.attempts import diff_html

        return diff_html.page(self)


def diff_runs(pipeline_file: Path, run_a: str, run_b: str, stage: str | None = None) -> RunDiff:
    """Compare runs ``run_a`` and ``run_b`` (run ids as ``nbops run`` printed them) of the pipeline in
    ``pipeline_file``, every stage or only ``stage`` (a stage, or one point ``stage/point-<id>``).

    Raises:
        InputError: a bad pipeline file, an unknown run or stage.
        InfraError: the store cannot be read.
    """
    from nbops.spec.load import load_pipeline

    pipeline = load_pipeline(pipeline_file)
    store = open_store(pipeline.root)
    key_a, key_b = run_key_of(store, pipeline, run_a.strip()), run_key_of(store, pipeline, run_b.strip())
    units = _units(store, pipeline, key_a, key_b, stage)
    cache: dict[str, Upstream] = {}
    found = []
    for unit in units:
        a = diff_read.read(store, pipeline, key_a, unit)
        b = diff_read.read(store, pipeline, key_b, unit)
        if a is not None or b is not None:  # a stage that started in neither run is no difference
            found.append(compare_unit(store, unit, a, b, cache))
    return RunDiff(pipeline.name, store.url, key_a, key_b, tuple(found))


def _units(store: Store, pipeline: Pipeline, key_a: str, key_b: str, stage: str | None) -> list[str]:
    """The units of either run in the spec's order (points in sweep order), ``stage`` alone when given."""
    wanted = stage.split("/", 1)[0] if stage else None
    if wanted is not None and wanted not in pipeline.spec.stages:
        raise InputError(
            f"--stage '{stage}': not a stage of {pipeline.path} (stages: {', '.join(pipeline.spec.stages)})"
        )
    units: list[str] = []
    for name in pipeline.spec.stages:
        if wanted is None or name == wanted:
            units += [u for u in units_of(store, pipeline, key_a, name) if u not in units]
            units += [u for u in units_of(store, pipeline, key_b, name) if u not in units]
    if stage is not None and "/" in stage:
        if stage not in units:
            raise InputError(f"--stage '{stage}': no such point in run {key_a} or {key_b} (points: {', '.join(units)})")
        units = [stage]
    return units


def compare_unit(store: Store, unit: str, a: Records | None, b: Records | None, cache: dict[str, Upstream]) -> UnitDiff:
    """One unit's attempts compared section by section (none when it started in one run only)."""
    if a is None or b is None:
        return UnitDiff(unit, a.side if a else None, b.side if b else None)
    known = a.start is not None and b.start is not None
    sections = (
        diff_sections.parameters(a.parameters(known), b.parameters(known)),
        diff_sections.metrics(_metrics(a), _metrics(b)),
        diff_sections.inputs(_inputs(store, a, cache), _inputs(store, b, cache)),
        _source(store, a, b),
        _outputs(a, b),
        diff_sections.values("files", a.carried, b.carried),
        _environment(a, b),
        diff_sections.values("commit", a.commit(), b.commit()),
        diff_sections.values("status", {"status": a.status}, {"status": b.status}),
    )
    return UnitDiff(unit, a.side, b.side, sections)


def _metrics(records: Records) -> dict[str, float]:
    manifest = records.manifest or records.ran_manifest
    return dict(manifest.metrics) if manifest is not None else {}


def _inputs(store: Store, records: Records, cache: dict[str, Upstream]) -> dict[str, Upstream]:
    return {i.unit: diff_read.upstream(store, i, cache) for i in records.inputs}


def _source(store: Store, a: Records, b: Records) -> Section:
    """The notebook by hash; when it differs, its cells: of the source notebooks the store keeps by
    content, else of the executed notebooks."""
    sha_a, sha_b = a.notebook_sha256, b.notebook_sha256
    if sha_a == sha_b:
        return Section("source")
    changes = (diff_sections.ValueChange("sha256", sha_a, sha_b),)
    raw_a = store.read_bytes(notebook_rel(sha_a)) if sha_a else None
    raw_b = store.read_bytes(notebook_rel(sha_b)) if sha_b else None
    note = "source notebooks"
    if raw_a is None or raw_b is None:
        raw_a, raw_b, note = a.notebook, b.notebook, "executed notebooks, injected parameters left out"
    if raw_a is None or raw_b is None:
        return Section("source", changes, note="no notebook to compare cells with")
    cells = diff_notebook.compare(
        diff_notebook.load(raw_a, f"notebook {sha_a}"), diff_notebook.load(raw_b, f"notebook {sha_b}"), outputs=False
    )
    return Section("source", changes, cells, note)


def _outputs(a: Records, b: Records) -> Section:
    """The executed notebooks' outputs cell by cell; the same when both ran as one attempt."""
    if (a.ran.run_key, a.ran.number) == (b.ran.run_key, b.ran.number):
        return Section("outputs", note="the same attempt ran both")
    if a.notebook is None or b.notebook is None:
        has = {"A": a.notebook is not None, "B": b.notebook is not None}
        if has["A"] == has["B"]:
            return Section("outputs", note="no executed notebook in either run")
        return diff_sections.values("outputs", {"executed notebook": has["A"]}, {"executed notebook": has["B"]})
    cells = diff_notebook.compare(
        diff_notebook.load(a.notebook, a.ran.location), diff_notebook.load(b.notebook, b.ran.location), outputs=True
    )
    shown = tuple(c if c.kind != "changed" else replace(c, source=()) for c in cells if c.outputs)
    return Section("outputs", cells=shown, note="executed notebooks")


def _environment(a: Records, b: Records) -> Section:
    """The environment string and image, and the installed packages (by version from the start
    records; by digest when a side has none)."""
    env_a, env_b = _env(a), _env(b)
    if a.start is not None and b.start is not None:
        env_a.update((f"package {n}", v) for n, v in diff_sections.package_versions(a.start.packages).items())
        env_b.update((f"package {n}", v) for n, v in diff_sections.package_versions(b.start.packages).items())
    else:
        env_a["packages sha256"] = a.manifest.packages_sha256 if a.manifest else None
        env_b["packages sha256"] = b.manifest.packages_sha256 if b.manifest else None
    return diff_sections.values("environment", env_a, env_b)


def _env(records: Records) -> dict[str, object]:
    record = records.start or records.manifest
    return {"environment": record.environment, "image": record.image} if record is not None else {}
