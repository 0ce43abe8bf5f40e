"""Which MLflow store to use and how to open it safely from many processes.

The embedded default is SQLite beside the pipeline file. Parallel stages share that file,
so the URI carries a generous busy timeout, the schema is created once under a file lock
(a new database is a copy of one MLflow migrated once, :mod:`nbops.tracking.template`) and the
database is switched to WAL so readers never block writers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from nbops.errors import InfraError

if TYPE_CHECKING:
    from mlflow import MlflowClient

ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
ENV_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
"""MLflow draws a progress bar on the terminal for every artifact download unless it is ``false``."""
SQLITE_BUSY_TIMEOUT_S = 120
_BOUNDED_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def default_tracking_uri(state: Path) -> str:
    """The embedded store: ``sqlite:///<state>/mlflow.db`` with a busy timeout."""
    return f"sqlite:///{(state / 'mlflow.db').resolve()}?timeout={SQLITE_BUSY_TIMEOUT_S}"


def tracking_uri(state: Path) -> str:
    """``$MLFLOW_TRACKING_URI`` when set, else the embedded default."""
    return os.environ.get(ENV_TRACKING_URI, "").strip() or default_tracking_uri(state)


def experiment_location(uri: str, local: str) -> str | None:
    """Where a new experiment keeps its artifacts: ``local`` (the artifact store's ``mlflow/``)
    for a database URI; for a tracking server (``http(s)://``), the server's choice (None), so
    that a server run with ``--artifacts-destination`` proxies them (``mlflow-artifacts:``) and
    stage pods, the UI and auditors all read them through it."""
    return None if uri.startswith(("http://", "https://")) else local


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def bound_http_retries() -> None:
    """Cap MLflow's HTTP retries (minutes by default) unless the user chose otherwise."""
    for key, value in _BOUNDED_HTTP.items():
        os.environ.setdefault(key, value)


def quiet_mlflow_logs() -> None:
    """Keep MLflow's own INFO lines (database creation, migrations) out of nbops's output.

    Only in this process: a notebook's kernel still logs as MLflow does by default, and
    ``MLFLOW_LOGGING_LEVEL``, when set, is respected.
    """
    if not os.environ.get("MLFLOW_LOGGING_LEVEL"):
        logging.getLogger("mlflow").setLevel(logging.WARNING)


def open_client(uri: str) -> MlflowClient:
    """An MLflow client on ``uri`` whose schema is ready.

    Raises:
        InfraError: the store cannot be reached or initialised.
    """
    from mlflow import MlflowClient

    quiet_mlflow_logs()
    bound_http_retries()
    db = sqlite_path(uri)
    try:
        if db is not None:
            _init_sqlite(uri, db)
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    except InfraError:
        raise
    except Exception as exc:
        raise InfraError(f"MLflow tracking store {redact_uri(uri)} is unreachable: {exc}") from exc
    return client


_warming: threading.Thread | None = None


def warm_mlflow() -> None:
    """Import MLflow and its SQL store in the background (a second or two), once: called when stages
    start their notebooks, so that recording what they did does not wait for it."""
    global _warming
    if _warming is None:
        _warming = threading.Thread(target=_import_mlflow, name="nbops-mlflow-warm-up", daemon=True)
        _warming.start()


def _import_mlflow() -> None:
    with contextlib.suppress(Exception):  # open_client imports it again and reports what fails
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401


def _init_sqlite(uri: str, db: Path) -> None:
    """Create the schema once, under a lock, and switch the file to WAL."""
    from filelock import FileLock

    db.parent.mkdir(parents=True, exist_ok=True)
    marker = db.with_name(db.name + ".ready")
    if marker.exists():
        return
    with FileLock(str(db) + ".lock", timeout=SQLITE_BUSY_TIMEOUT_S):
        if marker.exists():
            return
        from nbops.tracking import template

        artifact_root = (db.parent / "mlflow-artifacts").as_uri()
        if not template.seed(db, artifact_root):
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            SqlAlchemyStore(uri, default_artifact_root=artifact_root)  # type: ignore[no-untyped-call]
        with sqlite3.connect(db, timeout=SQLITE_BUSY_TIMEOUT_S) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
        marker.touch()


def redact_uri(uri: str) -> str:
    """The URI without a password (``user:***@host``)."""
    if "://" in uri and "@" in uri.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = uri.split("://", 1)
        creds, host = rest.split("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return uri


@contextmanager
def quiet_downloads() -> Iterator[None]:
    """No progress bars on the terminal while artifacts are read (unless the user asked for them)."""
    if ENV_PROGRESS_BAR in os.environ:
        yield
        return
    os.environ[ENV_PROGRESS_BAR] = "false"
    try:
        yield
    finally:
        os.environ.pop(ENV_PROGRESS_BAR, None)
