"""Recording through the process that launched the stage (the local runner), not in it.

``nbops run`` already has MLflow and nbconvert loaded; a stage command it launches finds a
recorder address in its environment and asks the runner, over an authenticated local
socket, to do its MLflow work: create the stage run, record, close, and render the HTML.
The runner does each step with the very :class:`~nbops.stage.tracker.StageTracker` code a
stage pod runs itself, in the order the stage asks for it, so the record is the same
whichever process writes it (DESIGN §10), and the stage command never imports MLflow.

The same channel lets the runner start a stage command before its upstream stages have
finished: the command loads and checks its pipeline, then :meth:`RecorderLink.wait_release`
blocks until the runner says go (its upstream attempts are sealed) or it is stopped.
Nothing is claimed before that, so a command stopped while it waits leaves nothing behind.

Without the environment variables (a pod, the Airflow local backend, ``nbops exec-stage``
typed by hand) the stage command records itself, exactly as before.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection
from typing import TYPE_CHECKING, Any, Protocol

from nbops.errors import InfraError, NbopsError

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from nbops.stage.tracker import Recording
    from nbops.storage.manifest import SealedModel

ENV_RECORDER = "NBOPS_RECORDER"
"""Socket address of the runner's recorder; set only by the local runner for its children."""
ENV_RECORDER_KEY = "NBOPS_RECORDER_KEY"
"""Hex key that authenticates the stage command to the recorder (HMAC challenge)."""
ENV_LAUNCH = "NBOPS_LAUNCH"
"""Which launch of which stage this command is, so the runner can release it."""
RELEASED, CANCELLED = "go", "cancel"


class Tracker(Protocol):
    """What a stage attempt asks of its MLflow record, wherever it is kept."""

    def start(self) -> None: ...
    def run_id(self) -> str: ...
    def warm(self) -> None: ...
    def to_html(self, nb: NotebookNode) -> str: ...
    def seal_models(self, signing_key: str | None) -> tuple[SealedModel, ...]: ...
    def finish(self, outcome: Recording) -> None: ...
    def close(self, status: str) -> None: ...
    def mark_failed(self, reason: str, exc: BaseException) -> None: ...


class ReleaseCancelled(NbopsError):
    """The runner will not release this stage command (an upstream failed, the run stopped)."""


class RecorderLink:
    """The stage command's end of the channel: one request at a time, one reply each."""

    def __init__(self, address: str, key: bytes, launch: str) -> None:
        self.launch = launch
        self._lock = threading.Lock()
        try:
            self._conn: Connection = Client(address, family="AF_UNIX", authkey=key)
        except (OSError, EOFError, AuthenticationError) as exc:
            raise InfraError(f"cannot reach the recorder of the nbops run that started this stage ({exc})") from exc

    @classmethod
    def from_env(cls) -> RecorderLink | None:
        """The link named by the environment, or None; the variables are taken out of it so the
        notebook's kernel never sees the key."""
        address = os.environ.pop(ENV_RECORDER, "")
        key = os.environ.pop(ENV_RECORDER_KEY, "")
        launch = os.environ.pop(ENV_LAUNCH, "")
        if not address or not key:
            return None
        return cls(address, bytes.fromhex(key), launch)

    def call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        """Send one request and return its reply.

        Raises:
            InfraError: the runner went away, or the step failed there for want of a store.
        """
        with self._lock:
            try:
                self._conn.send((op, args, kwargs))
                status, value = self._conn.recv()
            except (OSError, EOFError) as exc:
                raise InfraError(f"the nbops run recording this stage went away during '{op}' ({exc})") from exc
        if status == "error":
            raise InfraError(str(value))
        return value

    def wait_release(self) -> None:
        """Block until the runner releases this command.

        Raises:
            ReleaseCancelled: the runner will not release it.
        """
        if self.call("wait", self.launch) != RELEASED:
            raise ReleaseCancelled(self.launch)

    def close(self) -> None:
        """Close the channel; the runner forgets this command's tracker."""
        self._conn.close()


class DelegatedTracker:
    """A :class:`Tracker` whose MLflow steps run in the runner; same blocking points as the
    in-process one: set-up in the background, ``run_id()`` waits for it."""

    def __init__(self, link: RecorderLink, **tracker_args: Any) -> None:
        self._link = link
        self._args = tracker_args
        self._run_id = ""
        self._error: InfraError | None = None
        self._thread = threading.Thread(target=self._setup, name="nbops-tracking", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _setup(self) -> None:
        try:
            self._run_id = self._link.call("setup", **self._args)
        except InfraError as exc:
            self._error = exc

    def run_id(self) -> str:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._run_id

    def warm(self) -> None:
        """Nothing to warm up: the runner renders the HTML."""

    def to_html(self, nb: NotebookNode) -> str:
        return str(self._link.call("html", nb))

    def seal_models(self, signing_key: str | None) -> tuple[SealedModel, ...]:
        self.run_id()
        return tuple(self._link.call("seal_models", signing_key))

    def finish(self, outcome: Recording) -> None:
        self.run_id()
        self._link.call("finish", outcome)

    def close(self, status: str) -> None:
        self.run_id()
        self._link.call("close", status)

    def mark_failed(self, reason: str, exc: BaseException) -> None:
        try:
            self.run_id()
            self._link.call("mark_failed", reason, str(exc))
        except InfraError:  # best effort, like the in-process tracker
            pass


def make_tracker(link: RecorderLink | None, local: Callable[..., Tracker], **tracker_args: Any) -> Tracker:
    """A tracker that records through ``link`` when there is one, else ``local(**tracker_args)``."""
    if link is None:
        return local(**tracker_args)
    return DelegatedTracker(link, **tracker_args)
