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


def conf_problems(conf: Mapping[str, Any], valid: Collection[str]) -> list[str]:
    """One sentence per key of ``conf`` that is not in ``valid``."""
    every = f"; parameters are {', '.join(sorted(valid)) or 'none'}."
    return [
        f"conf key '{key}' names no stage parameter{did_you_mean(key, valid) or every}"
        for key in sorted(k for k in conf if k not in valid)
    ]


def check_conf(valid: list[str], dag_run: Any = None, **_: Any) -> None:
    """The ``check_conf`` task: raise (no retry) when the DAG run's conf has an unknown key."""
    from airflow.sdk.exceptions import AirflowFailException

    conf = getattr(dag_run, "conf", None) or {}
    problems = conf_problems(conf, set(valid))
    if problems:
        raise AirflowFailException(
            f"the trigger conf was refused, no stage ran: {' '.join(problems)} "
            "Keys are `<stage>.<parameter>`, as in the trigger form and `nbops run -p`."
        )
