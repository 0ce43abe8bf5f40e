"""The user's nbops cache directory, shared by every layer that keeps something there: mirrors
of remote artifact roots (``nbops.storage``) and MLflow database templates (``nbops.tracking``)."""

from __future__ import annotations

import os
from pathlib import Path

ENV_CACHE_DIR = "NBOPS_CACHE_DIR"


def cache_dir() -> Path:
    """``$NBOPS_CACHE_DIR``, else ``$XDG_CACHE_HOME/nbops``, else ``~/.cache/nbops``."""
    value = os.environ.get(ENV_CACHE_DIR, "").strip()
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "nbops"
