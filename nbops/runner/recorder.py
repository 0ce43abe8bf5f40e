"""The local runner's recorder: the stage commands it launches record through it.

One warm process (``nbops run`` imports MLflow and nbconvert once) serves every stage
command's MLflow steps over an authenticated Unix socket (:mod:`nbops.stage.recorder` is
the other end). Each step runs the same :class:`~nbops.stage.tracker.StageTracker` code a
stage pod runs for itself; steps that touch the store are serialized, so parallel stages
never contend for the SQLite file. The recorder also holds stage commands started ahead of
their upstream stages until :meth:`Recorder.release` lets them go.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import tempfile
import threading
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from pathlib import Path
from typing import Any

from nbops.errors import InfraError
from nbops.stage.recorder import CANCELLED, ENV_LAUNCH, ENV_RECORDER, ENV_RECORDER_KEY, RELEASED
from nbops.stage.tracker import StageTracker

SOCKET_DIR_MAX = 64
"""Longest temporary directory the socket goes under; longer ones would overflow ``sun_path``."""


class Recorder:
    """Serves stage commands until :meth:`close`; use as a context manager."""

    def __init__(self) -> None:
        # A Unix socket path is at most 107 bytes: a long $TMPDIR (macOS, CI runners) gets /tmp instead.
        base = None if len(tempfile.gettempdir()) <= SOCKET_DIR_MAX else "/tmp"  # noqa: S108 - a private 0700 dir
        self._dir = Path(tempfile.mkdtemp(prefix="nbops-recorder-", dir=base))
        self.address = str(self._dir / "socket")
        self._key = secrets.token_bytes(32)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.address)
        os.chmod(self.address, 0o600)
        self._sock.listen(64)
        self._store = threading.Lock()
        self._html = threading.Lock()
        self._verdicts: dict[str, str] = {}
        self._events: dict[str, threading.Event] = {}
        self._guard = threading.Lock()
        self._accepting = threading.Thread(target=self._accept, name="nbops-recorder", daemon=True)
        self._accepting.start()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def warm(self) -> None:
        """Warm up the HTML export and MLflow in the background (the first stage's archive and the
        rest of its record wait for them; its set-up does without MLflow where it can)."""
        from nbops.notebook import html
        from nbops.tracking.store import warm_mlflow

        html.prepare()
        warm_mlflow()

    def env(self, launch: str) -> dict[str, str]:
        """The environment a stage command needs to record through this recorder as ``launch``."""
        self._event(launch)
        return {ENV_RECORDER: self.address, ENV_RECORDER_KEY: self._key.hex(), ENV_LAUNCH: launch}

    def release(self, launch: str, *, go: bool = True) -> None:
        """Let the command started as ``launch`` go on (or tell it to stop, ``go=False``)."""
        with self._guard:
            self._verdicts.setdefault(launch, RELEASED if go else CANCELLED)
        self._event(launch).set()

    def close(self) -> None:
        """Stop accepting commands and remove the socket (commands still connected are answered
        until they hang up)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        for launch in list(self._events):
            self.release(launch, go=False)
        shutil.rmtree(self._dir, ignore_errors=True)

    def _event(self, launch: str) -> threading.Event:
        with self._guard:
            return self._events.setdefault(launch, threading.Event())

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._sock.accept()
            except OSError:
                return
            conn = Connection(sock.detach())
            threading.Thread(target=self._serve, args=(conn,), name="nbops-recorder-link", daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        with conn:
            try:
                deliver_challenge(conn, self._key)
                answer_challenge(conn, self._key)
            except Exception:  # a stranger (wrong key) or a command that hung up at once
                return
            tracker: StageTracker | None = None
            while True:
                try:
                    op, args, kwargs = conn.recv()
                except (OSError, EOFError):
                    return
                try:
                    value, tracker = self._step(op, args, kwargs, tracker)
                    reply: tuple[str, Any] = ("ok", value)
                except Exception as exc:  # every failure goes back to the stage as InfraError
                    reply = ("error", str(exc) if isinstance(exc, InfraError) else f"{type(exc).__name__}: {exc}")
                try:
                    conn.send(reply)
                except OSError:
                    return

    def _step(
        self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any], tracker: StageTracker | None
    ) -> tuple[Any, StageTracker | None]:
        if op == "wait":
            launch = str(args[0])
            self._event(launch).wait()
            return self._verdicts.get(launch, RELEASED), tracker
        if op == "html":
            from nbops.notebook.html import to_html

            with self._html:
                return to_html(args[0]), tracker
        if op == "setup":
            tracker = StageTracker(**kwargs)
            with self._store:
                tracker.start()
                return tracker.run_id(), tracker
        if tracker is None:
            raise InfraError(f"recorder: '{op}' before the stage run was set up")
        with self._store:
            if op == "seal_models":
                return tracker.seal_models(*args), tracker
            if op == "finish":
                tracker.finish(*args)
            elif op == "close":
                tracker.close(*args)
            elif op == "mark_failed":
                tracker.mark_failed(args[0], InfraError(args[1]))
            else:
                raise InfraError(f"recorder: unknown request '{op}'")
        return None, tracker
