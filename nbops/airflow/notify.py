"""The DAGs' failure alert: an Airflow notifier built from the lock's ``alerts:`` block.

Generated DAG files import this module whenever Airflow parses them, so it reads the lock as
plain JSON and imports neither the spec models (pydantic) nor apprise; :meth:`FailureNotifier.notify`
imports them once a DAG run has failed. The alert goes to the spec's URLs and, when
``alerts.connection`` names one, to the URLs of that Airflow connection (apprise provider),
read in the process that runs the callback (the DAG processor): ``${VAR}`` references of
the spec's URLs are expanded from that process's environment.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from nbops.alerts import Alert

# What AlertsSpec.on defaults to; a lock always spells `on` out, this covers a hand-made one.
_DEFAULT_EVENTS = ("failure", "champion_change", "drift")
_MAX_ERROR = 1000


def alerts_of(lock: dict[str, Any]) -> dict[str, Any] | None:
    """The lock's ``alerts:`` block as plain JSON, or None when the spec has none."""
    spec = lock.get("spec")
    alerts = spec.get("alerts") if isinstance(spec, dict) else None
    return alerts if isinstance(alerts, dict) else None


def failure_notifier(lock: dict[str, Any]) -> FailureNotifier | None:
    """The DAG's ``on_failure_callback``, or None when the spec sends no alert on failure."""
    alerts = alerts_of(lock)
    if alerts is None or "failure" not in alerts.get("on", _DEFAULT_EVENTS):
        return None
    return FailureNotifier(lock["spec"]["name"], alerts)


class FailureNotifier(BaseNotifier):
    """Sends the ``failure`` alert of a failed DAG run: DAG, run, logical date, failed task, reason.

    It never raises: a callback that fails is only logged by Airflow, and an alert that
    cannot be sent is already reported on stderr by :func:`nbops.alerts.send`.
    """

    def __init__(self, pipeline: str, alerts: dict[str, Any]) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.alerts = alerts

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing to render: the notifier has no template fields. Airflow's own would first ask the
        context's DAG for a template environment, which the ``SerializedDAG`` that ``airflow dags
        test`` passes lacks, and the alert would never be sent (apache/airflow#64649)."""
        if self.template_fields:
            super().render_template_fields(context, jinja_env)

    def notify(self, context: Any) -> None:
        """Send the alert for the failure described by ``context`` (an Airflow callback context)."""
        try:
            from nbops.alerts import send
            from nbops.spec import AlertsSpec

            spec = AlertsSpec.model_validate(self.alerts)
            extra = connection_urls(spec.connection) if spec.connection else []
            send(spec, failure_alert(self.pipeline, context), extra)
        except Exception as exc:
            _say(f"the failure alert of pipeline '{self.pipeline}' was not sent ({type(exc).__name__}: {exc})")


def connection_urls(conn_id: str) -> list[str]:
    """The Apprise URLs of an Airflow connection of the apprise provider, or [] when unreadable.

    The connection's ``config`` extra holds ``{"path": URL(s), "tag": ...}`` or a list of
    them; tags are ignored (every URL receives the alert). A connection that is missing or
    malformed is reported on stderr, and the alert still goes to the spec's URLs.
    """
    try:
        from airflow.providers.apprise.hooks.apprise import AppriseHook
        from apprise.utils.parse import parse_urls

        hook = AppriseHook(apprise_conn_id=conn_id)
        config = hook.get_config_from_conn(hook.get_connection(conn_id))
        entries = config if isinstance(config, list) else [config]
        urls: list[str] = []
        for entry in entries:
            urls.extend(parse_urls(entry["path"]))  # type: ignore[no-untyped-call]  # apprise leaves it unannotated
        return urls
    except Exception as exc:
        _say(
            f"cannot read the Apprise URLs of Airflow connection '{conn_id}' (alerts.connection: "
            f"{type(exc).__name__}: {exc}); the alert goes to alerts.urls only"
        )
        return []


def failure_alert(pipeline: str, context: Any) -> Alert:
    """The :class:`nbops.alerts.Alert` of a failed DAG run, from what ``context`` holds.

    A DAG's failure callback gets either the template context of the task instance that
    failed last (``dag_run``, ``ti``, ``logical_date``...) or, when Airflow has none, only
    ``dag``, ``run_id`` and ``reason``; a task's callback also gets ``exception``.
    """
    from nbops.alerts import Alert

    dag_run = context.get("dag_run")
    ti = context.get("ti") or context.get("task_instance")
    dag_id = _first(getattr(context.get("dag"), "dag_id", None), getattr(dag_run, "dag_id", None), pipeline)
    run_id = _first(context.get("run_id"), getattr(dag_run, "run_id", None))
    logical_date = _first(context.get("logical_date"), getattr(dag_run, "logical_date", None))
    reason = context.get("reason")

    lines = [f"DAG run {run_id or '(unknown)'} of DAG {dag_id} failed" + (f" ({reason})." if reason else ".")]
    if logical_date is not None:
        lines.append(f"Logical date: {_iso(logical_date)}")
    task_id = getattr(ti, "task_id", None)
    if task_id:
        lines.append(f"Failed task: {task_id}")
    exception = context.get("exception")
    if exception is not None:
        text = f"{type(exception).__name__}: {exception}" if isinstance(exception, BaseException) else str(exception)
        lines.append(f"Error: {text[:_MAX_ERROR]}")
    log_url = _log_url(ti) if task_id else None
    if log_url:
        lines.append(f"Log: {log_url}")
    title = f"nbops: {dag_id} failed" + (f" (task {task_id})" if task_id else "")
    return Alert(event="failure", title=title, body="\n".join(lines), pipeline=pipeline, run_id=run_id)


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None and v != ""), None)


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _log_url(ti: Any) -> str | None:
    try:
        url = ti.log_url  # a property that reads [api] base_url
    except Exception:
        return None
    return url if isinstance(url, str) and url else None


def _say(text: str) -> None:
    try:
        print(f"nbops: {text}", file=sys.stderr, flush=True)  # noqa: T201 - the callback's log
    except (OSError, ValueError):
        pass
