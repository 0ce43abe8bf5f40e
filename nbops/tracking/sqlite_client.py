"""The run record of ``nbops run`` written straight into MLflow's own SQLite tables (DESIGN §18).

Importing MLflow costs more than an unchanged re-run of a pipeline does all else. For the embedded
store only, the pipeline's experiment, the pipeline run, the runs of reused stages and the set-up
of every stage run (the run, its parameters) are written here with Python's ``sqlite3``, row for
row as MLflow's SQL store writes them: the subset of ``MlflowClient`` those records use
(:class:`SqliteClient`). What a notebook leaves (files, models) is recorded through MLflow. It is
used only when the database is at exactly the alembic revision of the installed MLflow (the
revision of the template MLflow made for this version, :mod:`nbops.tracking.template`) and the
experiment keeps its artifacts in a local directory; anywhere else
:func:`nbops.tracking.store.open_client` gives MLflow's own client.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlparse

from nbops.status import RunStatus
from nbops.tracking import entities
from nbops.tracking.store import SQLITE_BUSY_TIMEOUT_S, sqlite_path
from nbops.tracking.template import revision_of, template_path

if TYPE_CHECKING:
    from mlflow import MlflowClient

RUN_NAME = "mlflow.runName"
USER = "mlflow.user"
KEY_LIMIT, TAG_VALUE_LIMIT, PARAM_VALUE_LIMIT = 250, 8000, 6000
"""MLflow's limits on a key, a tag value and a param value (it refuses longer ones)."""
_CONDITION = re.compile(r"tags\.`([^`]+)` = '([^']*)'")


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: str
    status: str
    start_time: int
    end_time: int | None
    artifact_uri: str
    run_name: str
    lifecycle_stage: str


@dataclass(frozen=True)
class RunData:
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    info: RunInfo
    data: RunData


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    tags: dict[str, str]


def record_client(uri: str, experiment: str, artifact_location: str | None) -> MlflowClient | None:
    """A :class:`SqliteClient` on ``uri`` for pipeline ``experiment`` (typed as the client it stands
    in for), or None when MLflow's own client must be used: not the embedded store, the store not
    ready, a revision other than the installed MLflow's, or artifacts kept elsewhere than a local
    directory (the experiment's, or when it is new, ``artifact_location``)."""
    db = sqlite_path(uri)
    if db is None or not db.with_name(db.name + ".ready").exists():
        return None
    try:
        version = importlib.metadata.version("mlflow")
    except importlib.metadata.PackageNotFoundError:
        return None
    head = revision_of(template_path(version))
    if head is None or revision_of(db, check=False) != head:
        return None
    client = SqliteClient(uri, db)
    try:
        found = client.get_experiment_by_name(experiment)
    except sqlite3.Error:
        return None
    location = found.artifact_location if found is not None else artifact_location or ""
    if not location.startswith("file:///"):
        return None
    return cast("MlflowClient", client)


class SqliteClient:
    """The ``MlflowClient`` methods the run record uses, on MLflow's tables; every call is one transaction."""

    entities = entities
    """The records its methods take (``Param``, ``Metric``, ``RunTag``, ``Dataset``, ...)."""

    def __init__(self, uri: str, db: Path) -> None:
        self.tracking_uri = uri
        self._db = db

    @contextlib.contextmanager
    def _tx(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction; a writing one takes the write lock first (``BEGIN IMMEDIATE``), so that it
        waits its turn with MLflow's writers instead of failing to upgrade a read."""
        with contextlib.closing(sqlite3.connect(self._db, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None)) as conn:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- experiments ------------------------------------------------------------------------

    def search_experiments(self, max_results: int = 1000) -> list[Experiment]:
        with self._tx() as conn:
            rows = conn.execute("SELECT name FROM experiments WHERE lifecycle_stage = 'active' LIMIT ?", (max_results,))
            names = [r[0] for r in rows]
        return [e for e in (self.get_experiment_by_name(n) for n in names) if e is not None]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        with self._tx() as conn:
            row = conn.execute(
                "SELECT experiment_id, artifact_location FROM experiments WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                return None
            tags = dict(conn.execute("SELECT key, value FROM experiment_tags WHERE experiment_id = ?", (row[0],)))
        return Experiment(str(row[0]), name, row[1], tags)

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, str] | None = None
    ) -> str:
        if not name or not (artifact_location or "").startswith("file:///"):
            raise ValueError(
                f"SqliteClient creates experiments with a local artifact location, not {artifact_location}"
            )
        for key, value in (tags or {}).items():
            _check(key, value, TAG_VALUE_LIMIT)
        now = _now()
        with self._tx(write=True) as conn:
            created = conn.execute(
                "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time,"
                " workspace) VALUES (?, ?, 'active', ?, ?, 'default')",
                (name, artifact_location, now, now),
            ).lastrowid
            conn.executemany(
                "INSERT INTO experiment_tags (key, value, experiment_id) VALUES (?, ?, ?)",
                [(k, v, created) for k, v in (tags or {}).items()],
            )
        return str(created)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                "INSERT INTO experiment_tags (key, value, experiment_id) VALUES (?, ?, ?)"
                " ON CONFLICT (key, experiment_id) DO UPDATE SET value = excluded.value",
                (key, value, int(experiment_id)),
            )

    # -- runs -------------------------------------------------------------------------------

    def create_run(self, experiment_id: str, tags: dict[str, str] | None = None, run_name: str | None = None) -> Run:
        tags = dict(tags or {})
        name = run_name or tags.get(RUN_NAME)
        if not name:
            raise ValueError("SqliteClient.create_run needs a run name")
        if tags.setdefault(RUN_NAME, name) != name:
            raise ValueError(f"run_name '{name}' and tag {RUN_NAME} '{tags[RUN_NAME]}' differ")
        for key, value in tags.items():
            _check(key, value, TAG_VALUE_LIMIT)
        run_id, now = uuid.uuid4().hex, _now()
        with self._tx(write=True) as conn:
            row = conn.execute(
                "SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = ?",
                (int(experiment_id),),
            ).fetchone()
            if row is None or row[1] != "active":
                raise ValueError(f"experiment {experiment_id} is not active")
            artifact_uri = f"{row[0].rstrip('/')}/{run_id}/artifacts"
            conn.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status,"
                " start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id, deleted_time)"
                " VALUES (?, ?, 'UNKNOWN', '', '', ?, 'RUNNING', ?, NULL, '', 'active', ?, ?, NULL)",
                (run_id, name, tags.get(USER, "unknown"), now, artifact_uri, int(experiment_id)),
            )
            conn.executemany(
                "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", [(k, v, run_id) for k, v in tags.items()]
            )
        return self.get_run(run_id)

    def get_run(self, run_id: str) -> Run:
        with self._tx() as conn:
            runs = _runs(conn, "r.run_uuid = ?", (run_id,))
        if not runs:
            raise LookupError(f"Run with id={run_id} not found")
        return runs[0]

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        order_by: Sequence[str] | None = None,
        max_results: int = 1000,
    ) -> list[Run]:
        """Active runs whose tags equal the values of a filter such as ``tags.`a` = 'x' and tags.`b` = 'y'``
        (the only kind the run record asks for), newest first or (``attributes.start_time ASC``) oldest first."""
        conditions = [c for c in filter_string.split(" and ") if c.strip()]
        pairs = [_CONDITION.fullmatch(c.strip()) for c in conditions]
        if any(m is None for m in pairs):
            raise ValueError(f"SqliteClient cannot search with the filter {filter_string!r}")
        where = ["r.lifecycle_stage = 'active'", f"r.experiment_id IN ({', '.join('?' * len(experiment_ids))})"]
        args: list[Any] = [int(e) for e in experiment_ids]
        for m in pairs:
            assert m is not None  # noqa: S101 - checked above
            where.append("EXISTS (SELECT 1 FROM tags t WHERE t.run_uuid = r.run_uuid AND t.key = ? AND t.value = ?)")
            args += [m.group(1), m.group(2)]
        oldest_first = list(order_by or []) == ["attributes.start_time ASC"]
        if order_by and not oldest_first:
            raise ValueError(f"SqliteClient cannot order by {order_by!r}")
        order = "r.start_time ASC, r.run_uuid ASC" if oldest_first else "r.start_time DESC, r.run_uuid ASC"
        with self._tx() as conn:
            return _runs(conn, " AND ".join(where), tuple(args), order, max_results)

    def delete_run(self, run_id: str) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                "UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = ? WHERE run_uuid = ?", (_now(), run_id)
            )

    def set_terminated(self, run_id: str, status: str = RunStatus.FINISHED) -> None:
        with self._tx(write=True) as conn:
            _active(conn, run_id)
            conn.execute("UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?", (status, _now(), run_id))

    # -- what a run holds -------------------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[entities.Metric] = (),
        params: Sequence[entities.Param] = (),
        tags: Sequence[entities.RunTag] = (),
    ) -> None:
        for param in params:
            _check(param.key, param.value, PARAM_VALUE_LIMIT)
        for tag in tags:
            _check(tag.key, tag.value, TAG_VALUE_LIMIT)
        with self._tx(write=True) as conn:
            _active(conn, run_id)
            for param in params:
                have = conn.execute("SELECT value FROM params WHERE key = ? AND run_uuid = ?", (param.key, run_id))
                old = have.fetchone()
                if old is None:
                    conn.execute("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", (*_kv(param), run_id))
                elif old[0] != param.value:
                    raise ValueError(f"param '{param.key}' of run {run_id} has the value {old[0]!r} already")
            conn.executemany(
                "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)"
                " ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value",
                [(*_kv(t), run_id) for t in tags],
            )
            for metric in metrics:
                _log_metric(conn, run_id, metric)

    def log_inputs(self, run_id: str, datasets: Sequence[entities.DatasetInput] = ()) -> None:
        unique = {(d.dataset.name, d.dataset.digest): d for d in reversed(datasets)}
        with self._tx(write=True) as conn:
            experiment_id = _active(conn, run_id)
            for (name, digest), given in reversed(unique.items()):
                found = conn.execute(
                    "SELECT dataset_uuid FROM datasets WHERE experiment_id = ? AND name = ? AND digest = ?",
                    (experiment_id, name, digest),
                ).fetchone()
                dataset_uuid = found[0] if found else uuid.uuid4().hex
                if not found:
                    ds = given.dataset
                    conn.execute(
                        "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, dataset_source_type,"
                        " dataset_source, dataset_schema, dataset_profile) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (dataset_uuid, experiment_id, name, digest, ds.source_type, ds.source, ds.schema, ds.profile),
                    )
                linked = conn.execute(
                    "SELECT 1 FROM inputs WHERE source_type = 'DATASET' AND source_id = ?"
                    " AND destination_type = 'RUN' AND destination_id = ?",
                    (dataset_uuid, run_id),
                ).fetchone()
                if linked:
                    continue
                input_uuid = uuid.uuid4().hex
                conn.execute(
                    "INSERT INTO inputs (input_uuid, source_type, source_id, destination_type, destination_id, step)"
                    " VALUES (?, 'DATASET', ?, 'RUN', ?, 0)",
                    (input_uuid, dataset_uuid, run_id),
                )
                conn.executemany(
                    "INSERT INTO input_tags (input_uuid, name, value) VALUES (?, ?, ?)",
                    [(input_uuid, t.key, t.value) for t in given.tags],
                )

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        into = self._artifact_dir(run_id) / (artifact_path or "")
        into.mkdir(parents=True, exist_ok=True)
        shutil.copy2(local_path, into / Path(local_path).name)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        path = self._artifact_dir(run_id) / artifact_file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def _artifact_dir(self, run_id: str) -> Path:
        uri = self.get_run(run_id).info.artifact_uri
        if not uri.startswith("file:///"):
            raise ValueError(f"SqliteClient writes local artifacts only, not to {uri}")
        return Path(unquote(urlparse(uri).path))


def _now() -> int:
    return int(time.time() * 1000)


def _kv(item: Any) -> tuple[str, str]:
    return str(item.key), str(item.value)


def _check(key: str, value: str, limit: int) -> None:
    if not key or len(key) > KEY_LIMIT or len(str(value)) > limit:
        raise ValueError(f"'{key[:KEY_LIMIT]}': a key of 1 to {KEY_LIMIT} characters and a value of at most {limit}")


def _active(conn: sqlite3.Connection, run_id: str) -> int:
    """The experiment of run ``run_id``, which must be active (MLflow writes nothing to a deleted run)."""
    row = conn.execute("SELECT experiment_id, lifecycle_stage FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
    if row is None or row[1] != "active":
        raise ValueError(f"Run with id={run_id} not found or not active")
    return int(row[0])


def _log_metric(conn: sqlite3.Connection, run_id: str, metric: entities.Metric) -> None:
    """One metric value, and the run's latest value of it as MLflow keeps it (greatest step, then
    time, then value)."""
    value, is_nan = (0.0, 1) if metric.value != metric.value else (float(metric.value), 0)
    row = (metric.key, value, metric.timestamp, run_id, metric.step, is_nan)
    conn.execute(
        "INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)", row
    )
    latest = conn.execute(
        "SELECT step, timestamp, value FROM latest_metrics WHERE key = ? AND run_uuid = ?", (metric.key, run_id)
    ).fetchone()
    if latest is None or (metric.step, metric.timestamp, value) > tuple(latest):
        conn.execute(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value, timestamp = excluded.timestamp,"
            " step = excluded.step, is_nan = excluded.is_nan",
            (metric.key, value, metric.timestamp, metric.step, is_nan, run_id),
        )


def _runs(
    conn: sqlite3.Connection, where: str, args: tuple[Any, ...], order: str = "r.start_time", limit: int = 1000
) -> list[Run]:
    columns = "run_uuid, experiment_id, status, start_time, end_time, artifact_uri, name, lifecycle_stage"
    query = f"SELECT {columns} FROM runs r WHERE {where} ORDER BY {order} LIMIT ?"  # noqa: S608 - values are bound
    rows = conn.execute(query, (*args, limit)).fetchall()
    runs = []
    for run_id, exp, status, start, end, uri, name, stage in rows:

        def pairs(sql: str, rid: str = run_id) -> dict[str, Any]:
            return dict(conn.execute(sql, (rid,)).fetchall())

        data = RunData(
            tags=pairs("SELECT key, value FROM tags WHERE run_uuid = ?"),
            params=pairs("SELECT key, value FROM params WHERE run_uuid = ?"),
            metrics=pairs("SELECT key, value FROM latest_metrics WHERE run_uuid = ?"),
        )
        runs.append(Run(RunInfo(run_id, str(exp), status, start, end, uri, name or "", stage), data))
    return runs
