"""A new project's MLflow database is a copy of one MLflow migrated once: the same as MLflow would
have created there, never from a damaged or foreign template, never over an existing database."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nbops.cachedir import ENV_CACHE_DIR
from nbops.tracking import template
from nbops.tracking.store import default_tracking_uri, open_client

pytestmark = pytest.mark.integration


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _version() -> str:
    import mlflow

    return str(mlflow.__version__)


def _dump(db: Path) -> dict[str, Any]:
    """Every table's definition and rows, times left out."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        schema = sorted(conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall(), key=str)
        rows = {}
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            cursor = conn.execute(f'SELECT * FROM "{name}"')  # noqa: S608 - our own table names
            columns = [c[0] for c in cursor.description]
            rows[name] = sorted(
                (tuple((c, v) for c, v in zip(columns, row, strict=True) if not c.endswith("_time")) for row in cursor),
                key=str,
            )
    return {"schema": schema, "rows": rows}


def _set_revision(db: Path, revision: str) -> None:
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))


def test_a_seeded_database_is_what_mlflow_creates_there(cache: Path, tmp_path: Path) -> None:
    root = (tmp_path / "a b" / "mlflow-artifacts").as_uri()  # a space: the location is written as MLflow writes it
    made = tmp_path / "made" / "mlflow.db"
    made.parent.mkdir()
    template.create(made, root)
    seeded = tmp_path / "seeded" / "mlflow.db"
    seeded.parent.mkdir()
    assert template.seed(seeded, root)
    assert template.template_path(_version()).is_file()
    assert _dump(seeded) == _dump(made)
    assert template.revision_of(seeded) == template.head_revision()
    with contextlib.closing(sqlite3.connect(seeded)) as conn:
        (created,) = conn.execute("SELECT creation_time FROM experiments").fetchone()
    with contextlib.closing(sqlite3.connect(template.template_path(_version()))) as conn:
        (original,) = conn.execute("SELECT creation_time FROM experiments").fetchone()
    assert created >= original


def test_a_new_project_opens_a_usable_current_store(cache: Path, tmp_path: Path) -> None:
    uri = default_tracking_uri(tmp_path / "proj" / ".nbops")
    client = open_client(uri)
    assert template.template_path(_version()).is_file()
    experiment = client.create_experiment("p")
    run = client.create_run(experiment, tags={"k": "v"})
    client.set_terminated(run.info.run_id, "FINISHED")
    again = open_client(uri).get_run(run.info.run_id)
    assert again.data.tags["k"] == "v"
    assert again.info.status == "FINISHED"
    [default] = [e for e in client.search_experiments() if e.experiment_id == "0"]
    assert default.artifact_location == (tmp_path / "proj" / ".nbops" / "mlflow-artifacts" / "0").as_uri()


@pytest.mark.parametrize("damage", ["garbage", "foreign revision", "empty"])
def test_an_unusable_template_is_made_again_not_used(cache: Path, tmp_path: Path, damage: str) -> None:
    path = template.template_path(_version())
    path.parent.mkdir(parents=True)
    if damage == "garbage":
        path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        template.create(path, (tmp_path / "x").as_uri())
        _set_revision(path, "0123456789ab")
    db = tmp_path / "proj" / "mlflow.db"
    db.parent.mkdir()
    assert template.seed(db, (tmp_path / "art").as_uri())
    assert template.revision_of(db) == template.head_revision()
    assert template.revision_of(path) == template.head_revision()


def test_an_existing_database_is_never_overwritten(cache: Path, tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"mine")
    assert not template.seed(db, (tmp_path / "art").as_uri())
    assert db.read_bytes() == b"mine"


def test_without_a_writable_cache_mlflow_creates_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("")
    monkeypatch.setenv(ENV_CACHE_DIR, str(blocker))
    db = tmp_path / "proj" / ".nbops" / "mlflow.db"
    assert not template.seed(db, (tmp_path / "art").as_uri())
    assert not db.exists()
    client = open_client(default_tracking_uri(db.parent))
    assert client.get_experiment("0").name == "Default"
    assert template.revision_of(db) == template.head_revision()


def test_concurrent_first_runs_share_one_template(cache: Path, tmp_path: Path) -> None:
    """Four new projects opened at once with no template yet: one is made, every store is current."""
    code = "import sys; from nbops.tracking.store import open_client; open_client(sys.argv[1])"
    uris = [default_tracking_uri(tmp_path / f"p{n}" / ".nbops") for n in range(3)]
    uris.append(uris[0])  # two processes on the same new project as well
    procs = [subprocess.Popen([sys.executable, "-c", code, uri], stderr=subprocess.PIPE, text=True) for uri in uris]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    head = template.head_revision()
    assert [template.revision_of(tmp_path / f"p{n}" / ".nbops" / "mlflow.db") for n in range(3)] == [head] * 3
    assert [p.name for p in template.template_path(_version()).parent.glob("*.db")] == [f"mlflow-{_version()}.db"]
    assert not list(template.template_path(_version()).parent.glob(".*.tmp"))
