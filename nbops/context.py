"""The environment a stage's kernel inherits: the contract between the stage command and
the notebook API (``import nbops`` inside a notebook)."""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops.errors import InputError

ENV_PIPELINE = "NBOPS_PIPELINE"
ENV_PIPELINE_FILE = "NBOPS_PIPELINE_FILE"
ENV_RUN_ID = "NBOPS_RUN_ID"
ENV_STAGE = "NBOPS_STAGE"
ENV_ATTEMPT = "NBOPS_ATTEMPT"
ENV_OUTPUT_DIR = "NBOPS_OUTPUT_DIR"
ENV_INPUTS = "NBOPS_INPUTS"
ENV_FIRST_POINT_ONLY = "NBOPS_FIRST_POINT_ONLY"
"""Set (``1``) by ``nbops test``: a swept stage runs its first point only, and what needs it reads that one."""
ENV_SWEPT_INPUTS = "NBOPS_SWEPT_INPUTS"
"""Of each swept upstream stage, its points' parameters and outputs (``nbops.input_dirs``)."""
ENV_TRIGGER = "NBOPS_TRIGGER"
ENV_IMAGE = "NBOPS_IMAGE"
"""Set in stage pods to the stage's image, so the record names what the stage ran in."""
ENV_APPROVER = "NBOPS_APPROVER"
"""Who approves, as recorded (default: the login name; the DAG sets the Airflow user who answered)."""
ENV_TRIGGERED_BY = "NBOPS_TRIGGERED_BY"
"""Who started the run, when someone other than the OS user did (the DAG sets the Airflow user
who triggered the DAG run)."""
ENV_SIGNING_KEY = "NBOPS_SIGNING_KEY"
"""Path of the PEM elliptic-curve private key that signs registered models (never the key itself)."""
ENV_VERIFY_KEY = "NBOPS_VERIFY_KEY"
"""Path of the PEM public key that ``nbops audit`` and ``nbops serve`` verify model signatures with."""
WITHHELD = (ENV_SIGNING_KEY,)
"""What the stage command knows and the notebook's kernel is not given."""
# Set by the Airflow DAG on every stage command so the MLflow record names the DAG run.
ENV_AIRFLOW = {
    "dag_id": "NBOPS_AIRFLOW_DAG_ID",
    "run_id": "NBOPS_AIRFLOW_RUN_ID",
    "try_number": "NBOPS_AIRFLOW_TRY_NUMBER",
}


@dataclass(frozen=True)
class StageContext:
    """What a notebook knows about the pipeline run it is part of."""

    pipeline: str
    run_id: str
    stage: str
    attempt: int
    output_dir: Path
    inputs: dict[str, Path]
    swept: dict[str, list[tuple[dict[str, Any], Path]]] = field(default_factory=dict)
    """Of each swept upstream stage: ``(parameters, outputs)`` of its points, in point order."""

    def to_env(self) -> dict[str, str]:
        """The variables that describe this context."""
        return {
            ENV_PIPELINE: self.pipeline,
            ENV_RUN_ID: self.run_id,
            ENV_STAGE: self.stage,
            ENV_ATTEMPT: str(self.attempt),
            ENV_OUTPUT_DIR: str(self.output_dir),
            ENV_INPUTS: json.dumps({k: str(v) for k, v in self.inputs.items()}),
            ENV_SWEPT_INPUTS: json.dumps(
                {k: [{"parameters": p, "path": str(v)} for p, v in points] for k, points in self.swept.items()}
            ),
        }

    @classmethod
    def from_env(cls) -> StageContext | None:
        """The context of the current pipeline run, or None when running interactively."""
        env = os.environ
        if not env.get(ENV_RUN_ID) or not env.get(ENV_OUTPUT_DIR):
            return None
        inputs = json.loads(env.get(ENV_INPUTS) or "{}")
        return cls(
            pipeline=env.get(ENV_PIPELINE, ""),
            run_id=env[ENV_RUN_ID],
            stage=env.get(ENV_STAGE, ""),
            attempt=int(env.get(ENV_ATTEMPT, "1")),
            output_dir=Path(env[ENV_OUTPUT_DIR]),
            inputs={k: Path(v) for k, v in inputs.items()},
            swept={
                k: [(dict(p["parameters"]), Path(p["path"])) for p in points]
                for k, points in json.loads(env.get(ENV_SWEPT_INPUTS) or "{}").items()
            },
        )

    def to_pin(self, about: dict[str, Any]) -> bytes:
        """The pin file's bytes for a directory holding this context's ``output_dir`` (kept relative to
        it, so the directory may move) and ``about`` (what ``nbops debug`` says of the attempt)."""
        body = {
            "schema": PIN_SCHEMA,
            **about,
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "stage": self.stage,
            "attempt": self.attempt,
            "output_dir": str(self.output_dir),
            "inputs": {k: str(v) for k, v in self.inputs.items()},
            "swept": {k: [{"parameters": p, "path": str(v)} for p, v in pts] for k, pts in self.swept.items()},
        }
        return (json.dumps(body, indent=2, default=str) + "\n").encode("utf-8")

    @classmethod
    def from_pin(cls, path: Path) -> StageContext:
        """The context a pin file holds; its ``output_dir`` resolved against the file's directory.

        Raises:
            InputError: the file cannot be read or is not a pin.
        """
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                pipeline=str(body["pipeline"]),
                run_id=str(body["run_id"]),
                stage=str(body["stage"]),
                attempt=int(body["attempt"]),
                output_dir=path.parent / str(body["output_dir"]),
                inputs={k: Path(v) for k, v in dict(body["inputs"]).items()},
                swept={
                    k: [(dict(p["parameters"]), Path(p["path"])) for p in points]
                    for k, points in dict(body.get("swept") or {}).items()
                },
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"{path}: not a readable nbops debug pin ({exc}); run nbops debug again.") from None

    @classmethod
    def current(cls) -> StageContext | None:
        """The context of the current pipeline run, else the one pinned by ``nbops debug`` for the
        working directory (:func:`find_pin`), else None (plain interactive work)."""
        ctx = cls.from_env()
        if ctx is not None:
            return ctx
        pin = find_pin()
        return cls.from_pin(pin) if pin is not None else None


PIN_FILE = "nbops-debug.json"
"""Written by ``nbops debug`` at the top of the directory where it materialises an attempt: the
interactive stage context of a notebook run anywhere under it (Jupyter, ``papermill`` and
``jupyter nbconvert --execute`` start the kernel in the notebook's directory)."""
PIN_SCHEMA = "nbops.debug/1"


def find_pin(start: Path | None = None) -> Path | None:
    """The pin file in ``start`` (the working directory) or its nearest parent that has one."""
    here = (start or Path.cwd()).resolve()
    return next((d / PIN_FILE for d in (here, *here.parents) if (d / PIN_FILE).is_file()), None)


@dataclass(frozen=True)
class GitState:
    """The commit the code came from, and whether tracked files differed from it."""

    commit: str
    dirty: bool

    @property
    def known(self) -> bool:
        """False outside a git work tree (``commit`` is then ``unknown``)."""
        return self.commit != UNKNOWN_COMMIT


UNKNOWN_COMMIT = "unknown"


def git_state(directory: Path, paths: tuple[Path, ...] | None = None) -> GitState:
    """Where the code at ``directory`` came from in git.

    Without ``paths``: the commit checked out, dirty when a tracked file differs from it.
    With ``paths`` (``nbops promote`` passes the spec and the notebooks): the newest commit
    that changed any of them, dirty when one differs from it or was never committed. That
    commit does not move when unrelated files (the generated DAG itself) are committed, so
    promoting unchanged sources writes the same lock. Outside a work tree (or without git)
    the commit is ``unknown`` and not dirty.
    """
    rel = [str(p.resolve()) for p in paths] if paths is not None else []
    try:
        if paths is None:
            head = _git(directory, "rev-parse", "HEAD")
            changed = _git(directory, "status", "--porcelain", "--untracked-files=no")
        else:
            _git(directory, "rev-parse", "HEAD")  # fails outside a work tree, like the branch above
            head = _git(directory, "log", "-1", "--format=%H", "--", *rel) or UNKNOWN_COMMIT
            changed = _git(directory, "status", "--porcelain", "--untracked-files=all", "--", *rel)
    except (OSError, subprocess.SubprocessError):
        return GitState(UNKNOWN_COMMIT, dirty=False)
    return GitState(head, dirty=bool(changed) or head == UNKNOWN_COMMIT)


def _git(directory: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=directory, capture_output=True, text=True, timeout=5, check=True
    ).stdout.strip()


@dataclass(frozen=True)
class Who:
    """Who ran a process and where: what a run's record names as its author."""

    user: str
    """The OS user the process runs as (``uid <n>`` when the name cannot be read)."""
    host: str
    triggered_by: str
    """Who started the run when someone other than the OS user did (``$NBOPS_TRIGGERED_BY``), else empty."""

    @property
    def author(self) -> str:
        """The person the run is credited to: whoever triggered it, else the OS user."""
        return self.triggered_by or self.user


def who() -> Who:
    """The current process's user and host, and who triggered the run (``$NBOPS_TRIGGERED_BY``)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name, no passwd entry (a container run under a bare uid)
        user = f"uid {os.getuid()}"
    return Who(user=user, host=socket.gethostname(), triggered_by=os.environ.get(ENV_TRIGGERED_BY, "").strip())
