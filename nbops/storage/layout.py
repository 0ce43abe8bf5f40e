"""The artifact root and its run layout (DESIGN §5).

    <root>/runs/<pipeline>/<run_key>/<stage>/attempt-<n>/{output.ipynb, output.html, outputs/, manifest.json}

Attempt directories are claimed with an exclusive ``mkdir`` so that two processes never
share one; an attempt counts as done only once its ``manifest.json`` exists.
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

from nbops.errors import InfraError, InputError

ENV_ARTIFACT_ROOT = "NBOPS_ARTIFACT_ROOT"
STATE_DIR = ".nbops"
MANIFEST = "manifest.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_ATTEMPT = re.compile(r"^attempt-(\d+)$")


def state_dir(pipeline_dir: Path) -> Path:
    """The ``.nbops`` directory beside the pipeline file (embedded MLflow store, artifacts)."""
    return pipeline_dir / STATE_DIR


def is_remote(value: str) -> bool:
    """Whether an artifact root names a remote store (``s3://...``) rather than a directory."""
    return "://" in value and not value.startswith("file://")


def artifact_root(pipeline_dir: Path) -> Path:
    """The local artifact root: ``$NBOPS_ARTIFACT_ROOT`` or ``.nbops/artifacts`` beside the pipeline.

    Raises:
        InputError: the variable names a remote URL; open it with ``nbops.storage.open_store``.
    """
    value = os.environ.get(ENV_ARTIFACT_ROOT, "").strip()
    if not value:
        return state_dir(pipeline_dir) / "artifacts"
    if is_remote(value):
        raise InputError(f"{ENV_ARTIFACT_ROOT}={value}: a remote store, not a local directory.")
    return Path(value.removeprefix("file://")).expanduser().resolve()


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id such as ``20261121T093000Z-3f9a1c``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def run_key(run_id: str) -> str:
    """The run id as a path segment: characters such as ``:`` and ``+`` become ``-``."""
    key = _UNSAFE.sub("-", run_id).strip("-.")
    if not key:
        raise InputError(f"run id {run_id!r} has no usable characters.")
    return key


def run_dir(root: Path, pipeline: str, run_id: str) -> Path:
    """Directory of one pipeline run."""
    return root / "runs" / pipeline / run_key(run_id)


def stage_dir(root: Path, pipeline: str, run_id: str, stage: str) -> Path:
    """Directory holding every attempt of one stage in one run."""
    return run_dir(root, pipeline, run_id) / stage


def attempt_rel(pipeline: str, run_id: str, stage: str, number: int) -> str:
    """An attempt's place under the artifact root, '/'-separated (the same on every store)."""
    return f"runs/{pipeline}/{run_key(run_id)}/{stage}/attempt-{number}"


def attempt_number(path: Path) -> int:
    """The number of the attempt directory ``path`` (``.../attempt-3`` -> 3).

    Raises:
        ValueError: ``path`` is not an attempt directory.
    """
    match = _ATTEMPT.match(path.name)
    if match is None:
        raise ValueError(f"{path} is not an attempt directory")
    return int(match.group(1))


def attempts(directory: Path) -> list[tuple[int, Path]]:
    """Existing attempt directories, lowest number first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _ATTEMPT.match(p.name))]
    return sorted(found)


def claim_attempt(directory: Path) -> tuple[int, Path]:
    """Create the next ``attempt-<n>`` directory exclusively and return it.

    Raises:
        InfraError: the artifact root cannot be written.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        number = attempts(directory)[-1][0] + 1 if attempts(directory) else 1
        while True:
            path = directory / f"attempt-{number}"
            try:
                path.mkdir()
                return number, path
            except FileExistsError:
                number += 1
    except OSError as exc:
        raise InfraError(f"{directory}: cannot create a stage attempt directory ({exc.strerror}).") from exc


def latest_complete(directory: Path) -> Path | None:
    """The newest attempt of a stage that has a manifest, or None."""
    for _, path in reversed(attempts(directory)):
        if (path / MANIFEST).is_file():
            return path
    return None


MONITOR_RUN_PREFIX = "monitor__"
"""Run ids of monitor runs start with it (``nbops monitor``, the ``<name>_monitor`` DAG), so that
resuming the latest run never picks one."""


def latest_training_run(names: list[str]) -> str | None:
    """The most recent of these run keys (they sort by time), monitor runs left out."""
    runs = sorted(n for n in names if not n.startswith(MONITOR_RUN_PREFIX))
    return runs[-1] if runs else None


def latest_run_id(root: Path, pipeline: str) -> str | None:
    """The most recent run key of a pipeline (run keys sort by time), monitor runs left out, or None."""
    base = root / "runs" / pipeline
    if not base.is_dir():
        return None
    return latest_training_run([p.name for p in base.iterdir() if p.is_dir()])
