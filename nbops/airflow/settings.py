"""Run-time settings of the generated DAG: which backend runs stages, and where they record.

Each setting is read when a task runs, never when the DAG file is parsed: first from the
worker's environment, then from an Airflow Variable of the same name in lower case (for
example ``NBOPS_BACKEND`` or the Variable ``nbops_backend``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from nbops.storage.layout import ENV_ARTIFACT_ROOT, state_dir
from nbops.tracking.store import ENV_TRACKING_URI, default_tracking_uri

ENV_BACKEND = "NBOPS_BACKEND"
BACKENDS = ("kubernetes", "local")
POD_ARTIFACT_ROOT = "/nbops/artifacts"


class SettingError(ValueError):
    """A setting has a value nbops cannot use."""


def setting(name: str) -> str:
    """``$NAME`` from the environment, else the Airflow Variable ``name``, else empty."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    from airflow.sdk import Variable

    # Errors from the API server propagate: the task fails and is retried rather than
    # silently falling back to another backend.
    return str(Variable.get(name.lower(), default="") or "").strip()


def backend() -> str:
    """``kubernetes`` (default) or ``local``."""
    value = (setting(ENV_BACKEND) or "kubernetes").lower()
    if value not in BACKENDS:
        raise SettingError(f"{ENV_BACKEND}={value!r}: expected one of {', '.join(BACKENDS)}.")
    return value


def settings_macro(project_dir: Path, artifacts_claim: str | None) -> Callable[[str], str]:
    """The ``nbops_setting`` template macro: a setting, with defaults that fit the backend.

    Locally the defaults are those of ``nbops run`` (the ``.nbops`` directory beside the
    pipeline file), so both leave the same record. In a pod the artifact root defaults to
    the mounted claim; the tracking URI has no default and must be configured.
    """
    state = state_dir(project_dir)

    def nbops_setting(name: str) -> str:
        value = setting(name)
        if value:
            return value
        if backend() == "local":
            local = {ENV_ARTIFACT_ROOT: str(state / "artifacts"), ENV_TRACKING_URI: default_tracking_uri(state)}
            return local.get(name, "")
        if name == ENV_ARTIFACT_ROOT and artifacts_claim:
            return POD_ARTIFACT_ROOT
        return ""

    return nbops_setting
