"""What ``nbops exec-stage`` is asked to do and what it reports back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from nbops.errors import InputError
from nbops.status import StageStatus

COMMAND = "exec-stage"
"""The stage command's name: the first argument after ``nbops``."""
_VALUED = ("--pipeline", "--promoted", "--stage", "--run-id", "--params-json", "--point", "--result-file")
_FLAGS = ("--force",)


class StageArgvError(InputError, ValueError):
    """An argument list that is not a stage command line :meth:`StageRequest.to_argv` writes."""


def stage_argv(
    *,
    stage: str,
    run_id: str,
    params_json: str,
    pipeline_file: Path | str | None = None,
    promoted: str | None = None,
    point: int | str | None = None,
    result_file: Path | str | None = None,
    force: bool = False,
) -> list[str]:
    """The stage command line after ``nbops``, with the parameters already written as JSON.

    What :meth:`StageRequest.to_argv` writes; the Airflow pods call it directly, since there
    ``run_id`` and ``params_json`` are Jinja templates rendered when the task starts.
    Options in the order ``exec-stage`` declares them: ``--pipeline``/``--promoted`` (exactly
    one), ``--stage``, ``--run-id``, ``--params-json``, then ``--point`` (of a swept stage; a
    template such as ``{{ ti.map_index }}`` in a mapped Airflow task), ``--result-file`` and
    ``--force`` when given.

    Raises:
        StageArgvError: not exactly one of ``pipeline_file`` and ``promoted``.
    """
    if (pipeline_file is None) == (promoted is None):
        raise StageArgvError("a stage command line names exactly one of pipeline_file and promoted")
    argv = [COMMAND]
    argv += ["--pipeline", str(pipeline_file)] if pipeline_file is not None else ["--promoted", str(promoted)]
    argv += ["--stage", stage, "--run-id", run_id, "--params-json", params_json]
    if point is not None:
        argv += ["--point", str(point)]
    if result_file is not None:
        argv += ["--result-file", str(result_file)]
    if force:
        argv.append("--force")
    return argv


@dataclass(frozen=True)
class StageRequest:
    """Everything ``nbops exec-stage`` was asked to do."""

    pipeline_file: Path | None
    stage: str
    run_id: str
    params: dict[str, Any] = field(default_factory=dict)
    promoted: str | None = None
    run_date: str | None = None
    """What ``${run_date}`` stands for (default: :func:`nbops.rundate.current`)."""
    force: bool = False
    """Run the notebook even when a completed attempt could be reused (the attempt is still indexed)."""
    point: int | None = None
    """Of a swept stage: the index of the point this attempt runs (DESIGN §17)."""

    def to_argv(self, result_file: Path | str | None = None) -> list[str]:
        """The command line after ``nbops`` that asks ``exec-stage`` for this request, starting with
        ``exec-stage``; ``result_file`` adds ``--result-file``. ``run_date`` is not on it: the
        stage command reads it from ``NBOPS_RUN_DATE``.

        Raises:
            StageArgvError: not exactly one of ``pipeline_file`` and ``promoted``, or parameters
                that are not JSON.
        """
        try:
            params_json = json.dumps(self.params)
        except (TypeError, ValueError) as exc:
            raise StageArgvError(f"stage '{self.stage}': parameters not expressible as JSON ({exc})") from exc
        return stage_argv(
            stage=self.stage,
            run_id=self.run_id,
            params_json=params_json,
            pipeline_file=self.pipeline_file,
            promoted=self.promoted,
            point=self.point,
            result_file=result_file,
            force=self.force,
        )

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> StageRequest:
        """The request a stage command line asks for: the inverse of :meth:`to_argv`
        (``--opt=value`` spellings accepted as ``exec-stage`` accepts them; ``--result-file`` is
        accepted and, not being part of the request, dropped; ``run_date`` is None).

        Raises:
            StageArgvError: not an ``exec-stage`` command line: another command, an unknown,
                repeated or valueless option, a stray argument, a missing ``--stage`` or
                ``--run-id``, not exactly one of ``--pipeline`` and ``--promoted``, or
                ``--params-json`` that is not a JSON object.
        """
        args = list(argv)
        if not args or args[0] != COMMAND:
            raise StageArgvError(f"not a stage command line (expected {COMMAND!r} first): {args[:1]}")
        values: dict[str, str] = {}
        flags: set[str] = set()
        rest = iter(args[1:])
        for arg in rest:
            name, eq, inline = arg.partition("=")
            if name in values or name in flags:
                raise StageArgvError(f"{COMMAND}: option {name} given twice")
            if name in _FLAGS and not eq:
                flags.add(name)
            elif name in _VALUED:
                value = inline if eq else next(rest, None)
                if value is None:
                    raise StageArgvError(f"{COMMAND}: option {name} needs a value")
                values[name] = value
            elif name in _FLAGS:
                raise StageArgvError(f"{COMMAND}: option {name} takes no value")
            else:
                raise StageArgvError(f"{COMMAND}: unexpected argument {arg!r}")
        missing = [name for name in ("--stage", "--run-id") if name not in values]
        if missing:
            raise StageArgvError(f"{COMMAND}: missing {' and '.join(missing)}")
        if ("--pipeline" in values) == ("--promoted" in values):
            raise StageArgvError(f"{COMMAND}: needs exactly one of --pipeline and --promoted")
        try:
            params = json.loads(values.get("--params-json", "{}"))
        except json.JSONDecodeError as exc:
            raise StageArgvError(f"{COMMAND}: --params-json is not valid JSON ({exc.msg})") from exc
        if not isinstance(params, dict):
            raise StageArgvError(f"{COMMAND}: --params-json must be a JSON object, not {type(params).__name__}")
        pipeline, point = values.get("--pipeline"), values.get("--point")
        if point is not None and not point.isdigit():
            raise StageArgvError(f"{COMMAND}: --point must be a point's index (0, 1, ...), not {point!r}")
        return cls(
            pipeline_file=Path(pipeline) if pipeline is not None else None,
            stage=values["--stage"],
            run_id=values["--run-id"],
            params=params,
            promoted=values.get("--promoted"),
            force="--force" in flags,
            point=int(point) if point is not None else None,
        )


@dataclass(frozen=True)
class StageResult:
    """How one attempt ended, for the runner's summary and ``--result-file``."""

    stage: str
    run_id: str
    status: StageStatus
    attempt: int | None = None
    point: dict[str, Any] | None = None
    """Of a swept stage: the point's index, id and parameters."""
    attempt_dir: str | None = None
    mlflow_run_id: str | None = None
    duration_s: float = 0.0
    message: str = ""
    failed_cell: int | None = None
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds spent in each phase of the attempt that ran (prepare, claim, run, archive, ...)."""
    detail: list[str] = field(default_factory=list)
    """Where a failed attempt failed, one line each: the source line, the traceback's last lines,
    the executed notebook's path."""

    @property
    def exit_code(self) -> int:
        """The stage command's exit code (owned by :class:`StageStatus`)."""
        return int(self.status.exit_code)

    def to_json(self) -> str:
        """The result as one JSON document (``exit_code`` included for readers in other languages)."""
        body = asdict(self)
        body["status"] = self.status.value
        body["exit_code"] = self.exit_code
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StageResult:
        """Read a result written by :meth:`to_json`.

        Raises:
            ValueError: the text is not such a result.
        """
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a stage result is a JSON object")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["status"] = StageStatus(values.get("status"))
        return cls(**values)
