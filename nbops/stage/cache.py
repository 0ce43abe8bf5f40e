"""Incremental runs (DESIGN §13): the key of a stage attempt and the index of completed ones.

A stage attempt is reused when its key matches a completed attempt's. The key covers what
the notebook's outputs depend on: the notebook's sha256, the files it carries (``files:``),
its effective parameters, the manifests of the upstream attempts it consumes, the image or
Python environment it runs in, and the nbops version. A change in any of them changes the
key of that stage, and so the manifests it produces, and so the keys of what depends on it.

The index ``<artifact root>/cache/<pipeline>/<stage>/<key>.json`` (a swept stage's point:
``<stage>/point-<id>/<key>.json``) names the newest completed
attempt made under each key. A reader trusts an entry only when that attempt's manifest
still hashes to what the entry recorded and carries the same key; anything else is a miss.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Iterable, Mapping
from typing import Any

from nbops import __version__, environment
from nbops.errors import InputError
from nbops.spec import Pipeline
from nbops.stage.slots import CacheHit
from nbops.status import StageStatus
from nbops.storage import Store, layout
from nbops.storage.manifest import Manifest, ManifestInput, file_sha256, read_manifest

INDEX_DIR = "cache"
KEY_VERSION = 1
"""Changes whenever what goes into a key changes, so that older entries are never matched."""


def stage_key(
    *,
    pipeline: str,
    stage: str,
    notebook_sha256: str,
    files: Iterable[tuple[str, str]],
    parameters: Mapping[str, Any],
    inputs: Iterable[ManifestInput],
    environment_id: str,
) -> str:
    """The key of an attempt: sha256 of a canonical JSON of everything its outputs depend on."""
    body = {
        "key_version": KEY_VERSION,
        "pipeline": pipeline,
        "stage": stage,
        "notebook": notebook_sha256,
        "files": sorted(files),
        "parameters": parameters,
        "inputs": sorted((i.stage, i.manifest_sha256) for i in inputs),
        "environment": environment_id,
        "nbops": __version__,
    }
    text = json.dumps(body, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def carried_files(pipeline: Pipeline, stage: str) -> list[tuple[str, str]]:
    """(path, sha256) of the files that travel with the stage's notebook: as promoted, or as the
    working tree has them now."""
    frozen = pipeline.frozen.get(stage)
    if frozen is not None:
        return [(f.path, f.sha256) for f in frozen.files]
    return [(rel, file_sha256(pipeline.root / rel)) for rel in pipeline.stage_files(stage)]


def environment_id(image: str | None) -> str:
    """What the stage runs in: the Python version and the installed packages' digest, and in a pod
    its image. An image pinned by digest (``name@sha256:...``) stands for its packages alone; an
    image named by tag does not, since a tag can be rebuilt with other packages."""
    if image and "@sha256:" in image:
        return f"image:{image}"
    here = f"python:{platform.python_version()} packages:{environment.current().packages_sha256}"
    return f"image:{image} {here}" if image else here


def index_rel(pipeline: str, stage: str, key: str) -> str:
    """Where the index entry of ``key`` lives under the artifact root."""
    return f"{INDEX_DIR}/{pipeline}/{stage}/{key}.json"


def lookup(store: Store, pipeline: str, stage: str, key: str) -> CacheHit | None:
    """The completed attempt of ``stage`` (a swept stage's point: ``stage/point-<id>``) made under ``key``, or None.

    An entry whose attempt is gone, altered, or made under another key is a miss: the stage
    then runs and its new attempt replaces the entry.

    Raises:
        InfraError: the store cannot be read.
    """
    raw = store.read_bytes(index_rel(pipeline, stage, key))
    if raw is None:
        return None
    try:
        entry = json.loads(raw)
        run_id, number, expected = str(entry["run_id"]), int(entry["attempt"]), str(entry["manifest_sha256"])
    except (ValueError, KeyError, TypeError):
        return None
    try:
        done = store.attempt_dir(pipeline, run_id, stage, number)
        if done is None or file_sha256(done / layout.MANIFEST) != expected:
            return None
        manifest = read_manifest(done)
    except (InputError, OSError):  # altered or unreadable: never reused
        return None
    reusable = manifest.cache_key == key and manifest.reused is None
    if not reusable or not StageStatus(manifest.status).succeeded or manifest.status == StageStatus.CACHED.value:
        return None
    location = store.location(layout.attempt_rel(pipeline, run_id, stage, number))
    return CacheHit(key, run_id, done, manifest, expected, location)


def remember(store: Store, manifest: Manifest) -> None:
    """Index a sealed attempt that ran its notebook under its key (a no-op without a key).

    Raises:
        InfraError: the store did not take the entry.
    """
    if manifest.cache_key is None or manifest.reused is not None:
        return
    entry = {"run_id": manifest.run_id, "attempt": manifest.attempt, "manifest_sha256": manifest.sha256}
    store.put(index_rel(manifest.pipeline, manifest.unit, manifest.cache_key), json.dumps(entry).encode("utf-8"))
