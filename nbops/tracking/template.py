"""A new project's embedded MLflow database, copied from one MLflow migrated once (DESIGN §18).

MLflow creates a SQLite store by running every one of its alembic migrations: seconds, paid by
the first ``nbops run`` of every project. Instead, MLflow itself creates and migrates an empty
database once per MLflow version in the user's cache directory (``mlflow-db/mlflow-<version>.db``),
and a new project starts from a copy of it. What MLflow wrote for a location (its ``Default``
experiment's artifact location, its creation time) is written again for the project, so the copy
holds exactly what MLflow would have created there.

A template is used only when it is sound (SQLite's quick check) and at the alembic revision this
MLflow writes; otherwise it is made again, and if that fails the project's database is created
by MLflow as before. Only a database that does not exist yet is ever seeded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from pathlib import Path

from nbops.cachedir import cache_dir

TEMPLATE_DIR = "mlflow-db"
LOCK_TIMEOUT_S = 120
DEFAULT_EXPERIMENT = "0"


def template_path(version: str) -> Path:
    """Where the template of MLflow ``version`` lives."""
    return cache_dir() / TEMPLATE_DIR / f"mlflow-{version}.db"


def head_revision() -> str:
    """The alembic revision the installed MLflow writes."""
    from mlflow.store.db.utils import _get_latest_schema_revision

    return str(_get_latest_schema_revision())  # type: ignore[no-untyped-call]


def revision_of(db: Path, check: bool = True) -> str | None:
    """The alembic revision of the MLflow database ``db``; None when it is missing, not one or
    (``check``: SQLite's quick check, which reads the whole file) damaged."""
    if not db.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            if check and conn.execute("PRAGMA quick_check").fetchone() != ("ok",):
                return None
            rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        return None
    return str(rows[0][0]) if len(rows) == 1 else None


def create(db: Path, artifact_root: str) -> None:
    """Let MLflow create and migrate the database ``db`` (its ``Default`` experiment under ``artifact_root``)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{db}", default_artifact_root=artifact_root)  # type: ignore[no-untyped-call]
    store.engine.dispose()


def template(version: str, head: str) -> Path | None:
    """The template database of MLflow ``version`` at revision ``head``, made now if it is missing or
    unusable; None when it cannot be made (the cache directory is read-only, ...)."""
    from filelock import FileLock

    path = template_path(version)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S):
            if revision_of(path) == head:
                return path
            scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            scratch.unlink(missing_ok=True)
            try:
                create(scratch, (path.parent / "artifacts").resolve().as_uri())
                if revision_of(scratch) != head:
                    return None
                os.replace(scratch, path)
            finally:
                scratch.unlink(missing_ok=True)
    except Exception:  # a cache we cannot write is no reason to fail: MLflow creates the database itself
        return None
    return path


def seed(db: Path, artifact_root: str) -> bool:
    """Create ``db`` as a copy of the template of the installed MLflow, as MLflow would have created
    it with ``artifact_root``; False (nothing written) when ``db`` exists or no sound template can be had.

    The caller holds the database's creation lock.
    """
    if db.exists():
        return False
    import mlflow
    from mlflow.utils.uri import append_to_uri_path, resolve_uri_if_local

    head = head_revision()
    source = template(mlflow.__version__, head)
    if source is None:
        return False
    scratch = db.with_name(f".{db.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(source, scratch)
        if revision_of(scratch) != head:
            return False
        location = append_to_uri_path(resolve_uri_if_local(artifact_root), DEFAULT_EXPERIMENT)  # type: ignore[no-untyped-call]
        now = int(time.time() * 1000)
        with contextlib.closing(sqlite3.connect(scratch)) as conn, conn:
            conn.execute(
                "UPDATE experiments SET artifact_location = ?, creation_time = ?, last_update_time = ?"
                " WHERE experiment_id = ?",
                (location, now, now, int(DEFAULT_EXPERIMENT)),
            )
        if db.exists():
            return False
        os.replace(scratch, db)
        return True
    finally:
        scratch.unlink(missing_ok=True)
