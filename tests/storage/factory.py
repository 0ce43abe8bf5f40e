"""Manifests for tests: the fields a stage attempt records, with overrides."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from nbops.storage.manifest import Manifest, build_manifest

NOTEBOOK_SHA = hashlib.sha256(b"notebook").hexdigest()


def fields(**overrides: Any) -> dict[str, Any]:
    """Every field of a manifest but ``files``, as the stage command fills them."""
    return {
        "pipeline": "p",
        "run_id": "r",
        "stage": "s",
        "attempt": 1,
        "status": "succeeded",
        "notebook": {"path": "nb/s.ipynb", "sha256": NOTEBOOK_SHA},
        "parameters": {"n": 3},
        "metrics": {"rows": 3.0},
        "image": None,
        "mlflow_run_id": "0123abcd",
        "finished_at": "2026-11-01T00:00:00+00:00",
        "nbops_version": "0.1.0",
        **overrides,
    }


def manifest_of(attempt_dir: Path, **overrides: Any) -> Manifest:
    """The manifest of the files now in ``attempt_dir``."""
    return build_manifest(attempt_dir, **fields(**overrides))
