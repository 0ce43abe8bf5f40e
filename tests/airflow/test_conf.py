"""The trigger conf checked whole by the DAG's first task."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from nbops.airflow.conf import check_conf, conf_problems

VALID = ["train.C", "train.max_iter", "ingest.batch_size"]


@pytest.mark.unit
def test_unknown_keys_are_named_with_the_nearest_valid_one() -> None:
    assert conf_problems({"trian.C": 0.5, "train.max_iter": 3}, VALID) == [
        "conf key 'trian.C' names no stage parameter; did you mean 'train.C'?"
    ]
    (far,) = conf_problems({"zzz": 1}, VALID)
    assert far == "conf key 'zzz' names no stage parameter; parameters are ingest.batch_size, train.C, train.max_iter."
    assert conf_problems({"train.C": 1.0}, VALID) == []
    assert conf_problems({"x": 1}, []) == ["conf key 'x' names no stage parameter; parameters are none."]


@pytest.mark.unit
def test_the_task_fails_without_retry_on_an_unknown_key_and_passes_otherwise() -> None:
    with pytest.raises(AirflowFailException, match=r"no stage ran: conf key 'trian.C' .* did you mean 'train.C'\?"):
        check_conf(VALID, dag_run=SimpleNamespace(conf={"trian.C": 0.5}))
    check_conf(VALID, dag_run=SimpleNamespace(conf={"train.C": 0.5}))
    check_conf(VALID, dag_run=SimpleNamespace(conf=None))  # triggered without conf
    check_conf(VALID)
