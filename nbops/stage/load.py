"""Where a stage's pipeline comes from: the work tree's spec, or the promoted lock and the files
it froze, copied into place and checked against their hashes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from nbops.context import GitState, git_state
from nbops.errors import InfraError, InputError
from nbops.lock import fetch_lock
from nbops.spec import FrozenFile, Pipeline, load_pipeline
from nbops.storage import layout, open_store
from nbops.tracking.store import ENV_TRACKING_URI

if TYPE_CHECKING:
    from nbops.stage.result import StageRequest


def materialize(files: tuple[FrozenFile, ...], root: Path) -> None:
    """Copy each promoted file to its place under ``root``, refusing bytes that do not hash to
    what was promoted.

    Raises:
        InfraError: a file is not in the artifact store (yet).
        InputError: a file's bytes were changed after ``nbops promote``.
    """
    import hashlib

    for frozen in files:
        try:
            data = frozen.source.read_bytes()
        except FileNotFoundError:
            raise InfraError(
                f"{frozen.source}: '{frozen.path}', promoted with the notebook, is not in the artifact store; "
                "publish it (nbops promote with this NBOPS_ARTIFACT_ROOT) before the DAG runs."
            ) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != frozen.sha256:
            raise InputError(
                f"{frozen.source}: '{frozen.path}' has sha256 {actual}, not {frozen.sha256} as promoted; the "
                "published file was changed after `nbops promote`. Nothing was run; promote the pipeline again."
            )
        target = root / frozen.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def load(request: StageRequest) -> tuple[Pipeline, GitState]:
    """The pipeline from the working tree, or the promoted one whose lock hash was given, and
    the commit its code came from (the work tree's, or the one promote recorded in the lock)."""
    if request.promoted is None:
        if request.pipeline_file is None:
            raise InputError("exec-stage needs --pipeline FILE or --promoted LOCK_SHA256.")
        pipeline = load_pipeline(request.pipeline_file)
        return pipeline, git_state(pipeline.root)
    unset = [v for v in (layout.ENV_ARTIFACT_ROOT, ENV_TRACKING_URI) if not os.environ.get(v, "").strip()]
    if unset:
        raise InputError(
            f"--promoted {request.promoted}: {' and '.join(unset)} must be set; a promoted stage reads its notebook "
            "from the artifact store and records into the tracking server the deployment names (the DAG sets both)."
        )
    lock, path = fetch_lock(open_store(Path.cwd()), request.promoted)
    return lock.pipeline(path, open_store(Path.cwd()), request.stage), GitState(lock.git_commit, lock.git_dirty)
