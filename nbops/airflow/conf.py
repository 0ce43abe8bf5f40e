"""The trigger conf checked whole, before any stage starts.

Airflow validates each declared Param's type when a DAG run is created, but lets keys that
name no Param through: ``{"trian.C": 0.5}`` would run ``train`` with its default. The
generated DAG's first task, ``check_conf``, fails the run on such a key, naming it and the
nearest valid one, so no stage pod starts with a value the user did not mean.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from nbops.errors import did_you_mean
from nbops.graph import CHECK_TASK

TASK_ID = CHECK_TASK
DOC = (
    "Fails the DAG run, before any stage starts, when the trigger conf has a key that names no stage "
    "parameter (`<stage>.<name>`), naming the key and the nearest valid one."
)


def conf_problems(conf: Mapping[str, Any], valid: Collection[str], swept: Mapping[str, str] | None = None) -> list[str]:
    """One sentence per key of ``conf`` that is not in ``valid``; a key a sweep sets (``swept``: key ->
    the spec field) is named as such."""
    every = f"; parameters are {', '.join(sorted(valid)) or 'none'}."
    swept = swept or {}
    return [
        f"conf key '{key}' is swept by {swept[key]}: each point sets it; change the sweep and promote again"
        if key in swept
        else f"conf key '{key}' names no stage parameter{did_you_mean(key, valid) or every}"
        for key in sorted(k for k in conf if k not in valid)
    ]


def check_conf(valid: list[str], dag_run: Any = None, swept: dict[str, str] | None = None, **_: Any) -> None:
    """The ``check_conf`` task: raise (no retry) when the DAG run's conf has an unknown or swept key."""
    from airflow.sdk.exceptions import AirflowFailException

    conf = getattr(dag_run, "conf", None) or {}
    problems = conf_problems(conf, set(valid), swept)
    if problems:
        raise AirflowFailException(
            f"the trigger conf was refused, no stage ran: {' '.join(problems)} "
            "Keys are `<stage>.<parameter>`, as in the trigger form and `nbops run -p`."
        )
