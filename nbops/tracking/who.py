"""Who ran a run and where: the tags both kinds of run carry, built once for every creator (the
stage's own records, the local runner's parent run)."""

from __future__ import annotations

from nbops.context import who
from nbops.tracking import tags


def who_tags() -> dict[str, str]:
    """The OS user and host of this process, whoever triggered the run (``$NBOPS_TRIGGERED_BY``,
    set by the DAG), and MLflow's own ``mlflow.user`` (the UI's "Created by"): the triggering user
    when there is one, else the OS user. ``MlflowClient.create_run`` keeps an explicit
    ``mlflow.user`` and makes it the run's user too."""
    person = who()
    return {
        tags.USER: person.user,
        tags.HOST: person.host,
        **({tags.TRIGGERED_BY: person.triggered_by} if person.triggered_by else {}),
        tags.MLFLOW_USER: person.author,
    }
