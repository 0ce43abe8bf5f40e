"""Alerts sent for real, with apprise, to a JSON hook on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from nbops import alerts
from nbops.alerts import Alert, Delivery, mlflow_link, send
from nbops.spec import AlertsSpec
from tests.hookserver import HookServer

pytestmark = pytest.mark.unit


@pytest.fixture
def hook() -> Iterator[HookServer]:
    server = HookServer()
    yield server
    server.close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def alert(event: Any = "failure", **kwargs: Any) -> Alert:
    fields = {
        "title": "churn failed",
        "body": "Stage train failed: ValueError: bad input.",
        "pipeline": "churn",
        "run_id": "manual__2026-11-21",
        "link": "http://mlflow:5000/#/experiments/1/runs/abc",
        **kwargs,
    }
    return Alert(event=event, **fields)


def test_sends_title_body_pipeline_run_and_link(hook: HookServer, capsys: pytest.CaptureFixture[str]) -> None:
    delivery = send(AlertsSpec(urls=(hook.url(),)), alert())

    assert delivery == Delivery("failure", 1, ())
    assert delivery.ok
    [(path, payload)] = hook.received
    assert path == "/hook"
    assert payload["title"] == "churn failed"
    assert payload["type"] == "failure"
    message = payload["message"]
    assert "Stage train failed: ValueError: bad input." in message
    assert "Pipeline: churn" in message
    assert "Run: manual__2026-11-21" in message
    assert "MLflow: http://mlflow:5000/#/experiments/1/runs/abc" in message
    assert capsys.readouterr().err == "nbops: alert 'failure' sent to 1 of 1 URL(s)\n"


def test_message_leaves_out_what_is_unknown(hook: HookServer) -> None:
    send(AlertsSpec(urls=(hook.url(),)), alert("drift", run_id=None, link=None))

    [payload] = hook.messages()
    assert payload["type"] == "warning"
    assert "Run:" not in payload["message"]
    assert "MLflow:" not in payload["message"]


def test_expands_variables_without_printing_them(
    hook: HookServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NBOPS_TEST_HOOK_TOKEN", "s3cr3t-t0ken")
    dead = f"json://127.0.0.1:{closed_port()}/hook/${{NBOPS_TEST_HOOK_TOKEN}}"
    spec = AlertsSpec(urls=(hook.url("hook/${NBOPS_TEST_HOOK_TOKEN}"), dead))

    delivery = send(spec, alert())

    assert delivery is not None
    assert [path for path, _ in hook.received] == ["/hook/s3cr3t-t0ken"]
    err = capsys.readouterr().err
    assert "sent to 1 of 2 URL(s)" in err
    assert "s3cr3t-t0ken" not in err
    assert "s3cr3t-t0ken" not in "".join(delivery.failed)
    assert "/hook/${NBOPS_TEST_HOOK_TOKEN}" in delivery.failed[0]


def test_missing_variable_fails_that_url_only(
    hook: HookServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NBOPS_TEST_UNSET", raising=False)
    spec = AlertsSpec(urls=("json://127.0.0.1:1/${NBOPS_TEST_UNSET}", hook.url()))

    delivery = send(spec, alert())

    assert delivery is not None
    assert delivery.sent == 1
    [line] = delivery.failed
    assert line.startswith("alerts.urls[0] (json://…): ")
    assert line.endswith("environment variable NBOPS_TEST_UNSET is not set or empty")
    assert len(hook.received) == 1
    assert f"nbops: alert 'failure' not sent to {line}\n" in capsys.readouterr().err


def test_unreachable_url_fails_without_raising_and_the_next_still_receives(
    hook: HookServer, capsys: pytest.CaptureFixture[str]
) -> None:
    port = closed_port()
    spec = AlertsSpec(urls=(f"json://127.0.0.1:{port}/hook", hook.url()))

    delivery = send(spec, alert())

    assert delivery is not None
    assert not delivery.ok
    assert (delivery.sent, delivery.total) == (1, 2)
    [line] = delivery.failed
    assert line.startswith(f"alerts.urls[0] (json://127.0.0.1:{port}/hook): ")
    assert len(hook.received) == 1
    err = capsys.readouterr().err
    assert "nbops: alert 'failure' sent to 1 of 2 URL(s)" in err
    assert f"not sent to alerts.urls[0] (json://127.0.0.1:{port}/hook)" in err


def test_a_silent_server_is_given_up_on(hook: HookServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alerts, "READ_TIMEOUT", 0.5)
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        start = time.monotonic()
        delivery = send(AlertsSpec(urls=(f"json://127.0.0.1:{port}/hook", hook.url())), alert())
        elapsed = time.monotonic() - start

    assert delivery is not None
    assert delivery.sent == 1
    assert delivery.failed[0].startswith(f"alerts.urls[0] (json://127.0.0.1:{port}/hook): ")
    assert elapsed < 5


def test_a_url_apprise_cannot_read_fails_alone(hook: HookServer) -> None:
    delivery = send(AlertsSpec(urls=("nosuchservice://x/y", hook.url())), alert())

    assert delivery is not None
    assert delivery.sent == 1
    assert delivery.failed[0].startswith("alerts.urls[0] (nosuchservice://…): not a URL apprise can send to")


def test_extra_urls_are_sent_as_given(hook: HookServer) -> None:
    spec = AlertsSpec(urls=(), connection="nbops_alerts")

    delivery = send(spec, alert(), extra_urls=[hook.url("from-connection")])

    assert delivery == Delivery("failure", 1, ())
    assert [path for path, _ in hook.received] == ["/from-connection"]


def test_events_not_listed_send_nothing(hook: HookServer, capsys: pytest.CaptureFixture[str]) -> None:
    spec = AlertsSpec(urls=(hook.url(),), on=("drift",))

    assert send(spec, alert("failure")) is None
    assert send(None, alert("failure")) is None
    assert hook.received == []
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("ui", "tracking_uri", "expected"),
    [
        (None, "http://mlflow:5000", "http://mlflow:5000/#/experiments/7/runs/r1"),
        (None, "https://mlflow.example.com/", "https://mlflow.example.com/#/experiments/7/runs/r1"),
        (
            "https://ui.example.com/mlflow/",
            "file:///tmp/mlruns",
            "https://ui.example.com/mlflow/#/experiments/7/runs/r1",
        ),
        ("https://ui.example.com", "http://mlflow:5000", "https://ui.example.com/#/experiments/7/runs/r1"),
        (None, "file:///tmp/mlruns", None),
        (None, "sqlite:///mlflow.db", None),
    ],
)
def test_mlflow_link(monkeypatch: pytest.MonkeyPatch, ui: str | None, tracking_uri: str, expected: str | None) -> None:
    if ui is None:
        monkeypatch.delenv("NBOPS_MLFLOW_UI_URL", raising=False)
    else:
        monkeypatch.setenv("NBOPS_MLFLOW_UI_URL", ui)

    assert mlflow_link(tracking_uri, "7", "r1") == expected


@pytest.mark.integration
def test_import_is_cheap() -> None:
    code = "import sys, nbops.alerts; print([m for m in ('apprise', 'pydantic', 'nbops.spec') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
