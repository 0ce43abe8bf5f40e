"""``nbops debug``: an attempt, typically a failed one, reopened for interactive work (DESIGN §18).

The directory it makes is laid out like the project, as a promoted stage runs: the executed
notebook at its place (its injected-parameters cell and outputs up to where the attempt stopped),
the helper files the stage carried at theirs (from the store, by content), a scratch ``outputs/``
and, at the top, the pin file (:data:`nbops.context.PIN_FILE`). Opened in Jupyter or executed as it
is, the notebook's ``nbops.input_dir`` then resolves to exactly the upstream attempts the attempt
consumed (as its start record names them, else its manifest), whatever ran since, and
``nbops.output_dir`` to the scratch directory. Nothing that exists is overwritten.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nbops.attempts.find import NOTEBOOK, AttemptRef, open_named, that_ran
from nbops.attempts.text import INDENT, NotebookText, parse
from nbops.context import PIN_FILE, StageContext
from nbops.errors import InfraError, InputError
from nbops.lock import file_rel
from nbops.spec import Pipeline
from nbops.stage.upstream import grouped
from nbops.storage import Store, layout
from nbops.storage.atomic import write_atomic
from nbops.storage.lineage import attempt_that_ran
from nbops.storage.manifest import CarriedFile, ManifestInput, file_sha256
from nbops.storage.start import START

DEBUG_DIR = "debug"
"""Beside the pipeline file: where ``nbops debug`` makes its directories unless told otherwise."""
SCRATCH = "outputs"


@dataclass(frozen=True)
class Debugged:
    """What ``nbops debug`` made, and what it prints."""

    directory: Path
    notebook: Path
    message: str


def debug_command(
    stage: str,
    *,
    pipeline_file: Path | None = None,
    run: str | None = None,
    number: int | None = None,
    point: int | None = None,
    directory: Path | None = None,
) -> Debugged:
    """``nbops debug``: materialise the attempt named in ``directory`` (by default a new
    ``debug/<unit>-<run>-attempt-<n>`` beside the pipeline file).

    Raises:
        InputError: an unknown stage, run, attempt or point; ``directory`` exists and is not empty;
            the attempt saved no notebook; an upstream attempt it consumed is gone or changed.
        InfraError: the store cannot be read, or ``directory`` cannot be written.
    """
    pipeline, ref = open_named(pipeline_file, stage, run, number, point)
    return materialise(pipeline, ref, directory if directory is not None else default_directory(pipeline, ref))


def default_directory(pipeline: Pipeline, ref: AttemptRef) -> Path:
    """``debug/<unit>-<run_key>-attempt-<n>`` beside the pipeline file (a point's ``/`` as ``-``)."""
    return pipeline.root / DEBUG_DIR / f"{ref.unit.replace('/', '-')}-{ref.run_key}-attempt-{ref.number}"


def materialise(pipeline: Pipeline, ref: AttemptRef, directory: Path) -> Debugged:
    """Write the attempt's notebook, carried files, scratch outputs and pin into ``directory``.

    Raises:
        See :func:`debug_command`.
    """
    _refuse_used(directory)
    ran = that_ran(ref)  # a reuse ran no notebook: the attempt it stands for did
    raw = ran.notebook()
    if raw is None:
        raise InputError(
            f"{ran.describe()} saved no notebook ({ran.location}/{NOTEBOOK}): it stopped before its first cell, "
            "or has not started one yet. Its stage log says why."
        )
    view = NotebookText(parse(raw, f"{ran.location}/{NOTEBOOK}"))
    start, manifest = ran.start(), ran.manifest()
    record = start if start is not None else manifest
    if record is None:
        raise InputError(
            f"{ran.describe()} has neither a start record ({ran.location}/{START}) nor a manifest, so the "
            "upstream attempts it read are unknown; nothing was written."
        )
    consumed = upstream(ref.store, pipeline, ran, record.inputs)
    plain, swept = grouped({c.unit: path for c, path in consumed}, [c for c, _ in consumed])
    notebook = _inside(directory, record.notebook.path)
    files = [(_inside(directory, f.path), _carried(ref.store, pipeline, f)) for f in record.carried]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / SCRATCH).mkdir(exist_ok=True)
    except OSError as exc:
        raise InfraError(f"{directory}: cannot create the debug directory ({exc.strerror or exc}).") from exc
    write_atomic(notebook, raw)
    for path, data in files:
        if data is not None:
            write_atomic(path, data)
    ctx = StageContext(pipeline.name, record.run_id, record.stage, ran.number, Path(SCRATCH), plain, swept)
    about = {"pipeline_file": str(pipeline.path.resolve()), "unit": ran.unit, "notebook": record.notebook.path}
    write_atomic(directory / PIN_FILE, ctx.to_pin({**about, "location": ran.location}))
    missing = [path.relative_to(directory).as_posix() for path, data in files if data is None]
    return Debugged(directory, notebook, _message(ref, ran, view, directory, notebook, consumed, missing))


def upstream(
    store: Store, pipeline: Pipeline, ran: AttemptRef, inputs: Sequence[ManifestInput]
) -> list[tuple[ManifestInput, Path]]:
    """Each upstream attempt ``ran`` consumed and the local directory of its outputs (a remote store's
    sealed attempt downloaded and checked into the mirror; a reuse followed to the attempt that ran).

    Raises:
        InputError: one is gone from the store, or its manifest is not the one consumed.
    """
    found = []
    for consumed in inputs:
        key, n = _run_of(consumed, pipeline.name) or ran.run_key, consumed.attempt
        done = store.attempt_dir(pipeline.name, key, consumed.unit, consumed.attempt)
        where = consumed.location or store.location(layout.attempt_rel(pipeline.name, key, consumed.unit, n))
        if done is None:
            raise InputError(
                f"{ran.describe()} consumed attempt {consumed.attempt} of stage '{consumed.unit}' (run {key}), which "
                f"has no manifest in the store any more ({where}); its inputs cannot be pinned."
            )
        actual = file_sha256(done / layout.MANIFEST)
        if actual != consumed.manifest_sha256:
            raise InputError(
                f"{where}/{layout.MANIFEST}: sha256 {actual}, not {consumed.manifest_sha256} as {ran.describe()} "
                "consumed it; the upstream attempt was changed since (nbops audit --run names what)."
            )
        found.append((consumed, attempt_that_ran(store, pipeline.name, consumed.unit, done)[0] / "outputs"))
    return found


def _run_of(consumed: ManifestInput, pipeline: str) -> str:
    """The run key in a consumed attempt's recorded location (another run's, for a reuse or the
    monitor's champion run), or ``""`` when it names none."""
    unit, number = re.escape(consumed.unit), consumed.attempt
    found = re.search(
        rf"(?:^|/)runs/{re.escape(pipeline)}/([^/]+)/{unit}/attempt-{number}/?$", consumed.location.replace("\\", "/")
    )
    return found.group(1) if found else ""


def _carried(store: Store, pipeline: Pipeline, file: CarriedFile) -> bytes | None:
    """A carried file's bytes: the store's copy (by content), else the work tree's when it still has
    those bytes, else None."""
    for path in (store.fetch(file_rel(file.sha256)), pipeline.root / file.path):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if hashlib.sha256(data).hexdigest() == file.sha256:
            return data
    return None


def _inside(directory: Path, rel: str) -> Path:
    """``directory / rel``, refusing a recorded path that would leave ``directory``.

    Raises:
        InputError: ``rel`` is absolute or climbs out with ``..``.
    """
    path = directory / rel
    if Path(rel).is_absolute() or not path.resolve().is_relative_to(directory.resolve()):
        raise InputError(f"'{rel}': a recorded path outside the attempt's project layout; nothing was written.")
    return path


def _refuse_used(directory: Path) -> None:
    """Raises InputError when ``directory`` is a file or a directory with anything in it."""
    if directory.is_file() or (directory.is_dir() and any(directory.iterdir())):
        raise InputError(
            f"{directory}: exists and is not empty; nbops debug never overwrites. Give a new or empty --dir, "
            "or remove it."
        )


def _message(
    ref: AttemptRef,
    ran: AttemptRef,
    view: NotebookText,
    directory: Path,
    notebook: Path,
    consumed: list[tuple[ManifestInput, Path]],
    missing: list[str],
) -> str:
    """What ``nbops debug`` prints: where, what stopped it, what it reads, how to open or run it."""
    lines = [f"nbops debug: {ref.describe()} is in {directory}"]
    if ran != ref:
        lines.append(f"  it reused {ran.describe()}, whose notebook this is")
    lines.append(f"  {view.summary()}")
    if view.stopped_at is not None and view.status is not None and not view.status.succeeded:
        lines += [f"  {INDENT}{line}" for line in _where(view, view.stopped_at)]
    for record, path in consumed:
        call = f"input_dirs('{record.stage}')[{record.point.index}]" if record.point else f"input_dir('{record.stage}')"
        lines.append(f"  {call}: {path}")
    lines += [f"  not in the store, left out: {path}" for path in missing]
    rerun = notebook.with_suffix(".rerun.ipynb").name
    lines += [
        f"  open it:          jupyter lab {notebook}",
        f"  run it as it is:  cd {notebook.parent} && papermill {notebook.name} {rerun}",
    ]
    return "\n".join(lines)


def _where(view: NotebookText, position: int) -> list[str]:
    """The stopping cell's header, its error and the source line IPython marked (``---->``)."""
    body = view.cell_text(position).rstrip("\n").split("\n")
    errors = [line.strip() for line in body[1:] if line.strip()]
    marked = [line for line in errors if line.startswith("---->")]
    return [body[0], *errors[:1], *marked[-1:]]
