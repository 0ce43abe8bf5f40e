"""Who ran a run and where: the OS user and host, whoever triggered it, and MLflow's "Created by"."""

from __future__ import annotations

import getpass
import os
import socket

import pytest

from nbops.context import who
from nbops.tracking import tags
from nbops.tracking.who import who_tags

pytestmark = pytest.mark.unit


def test_a_run_started_by_its_os_user_is_credited_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NBOPS_TRIGGERED_BY", raising=False)
    assert who_tags() == {
        tags.USER: getpass.getuser(),
        tags.HOST: socket.gethostname(),
        tags.MLFLOW_USER: getpass.getuser(),
    }


def test_a_run_triggered_by_someone_else_is_credited_to_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBOPS_TRIGGERED_BY", " alice ")
    assert who_tags() == {
        tags.USER: getpass.getuser(),
        tags.HOST: socket.gethostname(),
        tags.TRIGGERED_BY: "alice",
        tags.MLFLOW_USER: "alice",
    }


def test_without_a_login_name_the_user_is_the_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    def nameless() -> str:
        raise KeyError("getpwuid(): uid not found")  # a container run under a uid with no passwd entry

    monkeypatch.setattr(getpass, "getuser", nameless)
    monkeypatch.delenv("NBOPS_TRIGGERED_BY", raising=False)
    person = who()
    assert person.user == f"uid {os.getuid()}" == person.author
    assert person.host == socket.gethostname()
