"""Alerts: one message about a pipeline event, sent to every Apprise URL of the spec's ``alerts:``.

An alert never fails what sends it: :func:`send` raises nothing and reports each URL that
did not take the message, in its :class:`Delivery` and on stderr. A URL's ``${VAR}``
references are read from the environment when sending, so secrets live in the environment
(a Kubernetes Secret, the Airflow deployment's env) and never in the spec. What is printed
about a URL is apprise's privacy-masked form without its query, with every expanded value
put back as ``${VAR}``.

Each URL is sent on its own, so that one failing URL neither hides another's failure nor
stops it; each is bounded: its connect and read timeouts are capped and apprise stops
waiting for it after :data:`SEND_TIMEOUT` seconds.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from apprise import AppriseResult

    from nbops.spec import AlertEvent, AlertsSpec

ENV_MLFLOW_UI_URL = "NBOPS_MLFLOW_UI_URL"
CONNECT_TIMEOUT = 5.0
"""Upper bound (seconds) of a URL's connect timeout (apprise's ``cto``; its default is lower)."""
READ_TIMEOUT = 5.0
"""Upper bound (seconds) of a URL's read timeout (apprise's ``rto``; its default is lower)."""
SEND_TIMEOUT = 10.0
"""Seconds apprise waits for one URL, its retries included, before giving up on it."""

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Apprise's message types: a colour or an icon on most services.
_NOTIFY_TYPES: dict[str, str] = {"failure": "failure", "champion_change": "success", "drift": "warning"}


@dataclass(frozen=True)
class Alert:
    """One message about one event of one pipeline."""

    event: AlertEvent
    """What happened: ``failure``, ``champion_change`` or ``drift``."""
    title: str
    """One line; most services show it as the subject."""
    body: str
    """What happened, in a few lines of plain text."""
    pipeline: str
    """The pipeline name."""
    run_id: str | None = None
    """The pipeline run (the Airflow run id under Airflow), when there is one."""
    link: str | None = None
    """The run in the MLflow UI (:func:`mlflow_link`), when known."""

    def message(self) -> str:
        """The text sent: the body, then the pipeline, the run and the link when known."""
        lines = [self.body.rstrip(), "", f"Pipeline: {self.pipeline}"]
        if self.run_id:
            lines.append(f"Run: {self.run_id}")
        if self.link:
            lines.append(f"MLflow: {self.link}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Delivery:
    """How one alert went: how many URLs took it and why the others did not."""

    event: AlertEvent
    """The alert's event."""
    sent: int
    """URLs that accepted the message."""
    failed: tuple[str, ...] = ()
    """One line per URL that did not: the URL, privacy-masked, then why."""

    @property
    def ok(self) -> bool:
        """Whether every URL accepted the message."""
        return not self.failed

    @property
    def total(self) -> int:
        """URLs the alert was sent to."""
        return self.sent + len(self.failed)


@dataclass(frozen=True)
class _Target:
    label: str
    template: str
    url: str | None = None
    secrets: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None


def send(alerts: AlertsSpec | None, alert: Alert, extra_urls: Sequence[str] = ()) -> Delivery | None:
    """Send ``alert`` to every URL of ``alerts`` and to ``extra_urls``, one URL at a time.

    Args:
        alerts: The spec's ``alerts:`` block; None (no block) sends nothing.
        alert: The message; nothing is sent unless its event is in ``alerts.on``.
        extra_urls: More Apprise URLs (an Airflow connection's), sent as given: their
            ``${VAR}`` references are not expanded.

    A variable's value is inserted verbatim, so that one may hold several path segments or a
    whole URL; a password with ``/``, ``@`` or ``:`` must be percent-quoted in the variable.

    Returns:
        None when nothing was to be sent, else how the alert went. Never raises: an alert
        that cannot be sent must not fail the pipeline that sends it.
    """
    if alerts is None or alert.event not in alerts.on:
        return None
    try:
        targets = [_expand(url, f"alerts.urls[{i}]", os.environ) for i, url in enumerate(alerts.urls)]
        targets += [_Target(f"extra URL {i}", url, url) for i, url in enumerate(extra_urls, start=1)]
        failed = [line for line in (_deliver(target, alert) for target in targets) if line is not None]
        delivery = Delivery(alert.event, len(targets) - len(failed), tuple(failed))
    except Exception as exc:  # a bug here must not fail the pipeline either
        delivery = Delivery(alert.event, 0, (f"every URL: {type(exc).__name__} while preparing the alert",))
    _say(f"alert '{alert.event}' sent to {delivery.sent} of {delivery.total} URL(s)")
    for line in delivery.failed:
        _say(f"alert '{alert.event}' not sent to {line}")
    return delivery


def mlflow_link(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """A link to a run in the MLflow UI, or None when no UI address is known.

    The UI is at ``$NBOPS_MLFLOW_UI_URL`` when set, else at the tracking URI when that is an
    http(s) server (a file or database store has no UI of its own).
    """
    base = os.environ.get(ENV_MLFLOW_UI_URL, "").strip()
    if not base and tracking_uri.startswith(("http://", "https://")):
        base = tracking_uri
    if not base:
        return None
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def _expand(template: str, label: str, environ: Mapping[str, str]) -> _Target:
    """The URL with its ``${VAR}`` references replaced; a missing variable is the URL's problem."""
    names = list(dict.fromkeys(_VAR.findall(template)))
    missing = [name for name in names if not environ.get(name)]
    if missing:
        which = f"variable {missing[0]} is" if len(missing) == 1 else f"variables {', '.join(missing)} are"
        return _Target(label, template, problem=f"environment {which} not set or empty")
    secrets = {name: environ[name] for name in names}
    return _Target(label, template, _VAR.sub(lambda m: secrets[m.group(1)], template), secrets)


def _deliver(target: _Target, alert: Alert) -> str | None:
    """Send to one URL: None when it took the message, else the line that says why not."""
    shown = f"{target.label} ({_scheme(target.template)}://…)"
    if target.problem is not None or target.url is None:
        return f"{shown}: {target.problem}"
    try:
        import apprise

        plugin = apprise.Apprise.instantiate(target.url)
        if plugin is None:
            return f"{shown}: not a URL apprise can send to (unknown scheme, or a required part missing or malformed)"
        masked = plugin.url(privacy=True)  # type: ignore[no-untyped-call]  # apprise leaves it unannotated
        shown = f"{target.label} ({_mask(str(masked), target.secrets)})"
        plugin.socket_connect_timeout = min(plugin.socket_connect_timeout, CONNECT_TIMEOUT)
        plugin.socket_read_timeout = min(plugin.socket_read_timeout, READ_TIMEOUT)
        sender = apprise.Apprise()
        sender.add(plugin)
        result = sender.notify(
            body=alert.message(),
            title=alert.title,
            notify_type=apprise.NotifyType(_NOTIFY_TYPES.get(alert.event, "info")),
            body_format=apprise.NotifyFormat.TEXT,
            timeout=SEND_TIMEOUT,
        )
        if result:
            return None
        return f"{shown}: {_redact(_why(result), target.secrets)}"
    except Exception as exc:
        return f"{shown}: {type(exc).__name__}: {_redact(str(exc), target.secrets)}"


def _why(result: AppriseResult) -> str:
    """Apprise's own last warning or error about a failed send, else its status."""
    from apprise import AppriseResultStatus

    if result.status == AppriseResultStatus.TIMEOUT:
        return f"no answer within {SEND_TIMEOUT:g} s"
    messages = [e.message.strip() for e in result.logs() if e.level in ("WARNING", "ERROR", "CRITICAL")]
    return messages[-1] if messages else f"apprise reported {result.status.name}"


def _scheme(template: str) -> str:
    match = _SCHEME.match(template)
    return match.group(1) if match else "?"


def _mask(privacy_url: str, secrets: Mapping[str, str]) -> str:
    """Apprise's privacy-masked URL without its query (custom parameters are not masked)."""
    return _redact(privacy_url.split("?", 1)[0].rstrip("/"), secrets)


def _redact(text: str, secrets: Mapping[str, str]) -> str:
    """``text`` with every expanded value, plain or percent-quoted, shown as its ``${VAR}``."""
    for name, value in sorted(secrets.items(), key=lambda item: -len(item[1])):
        for form in dict.fromkeys((value, quote(value, safe=""), quote(value))):
            text = text.replace(form, "${" + name + "}")
    return text


def _say(text: str) -> None:
    try:
        print(f"nbops: {text}", file=sys.stderr, flush=True)  # noqa: T201 - the alert's outcome, on the run's log
    except (OSError, ValueError):  # stderr closed: the outcome is still in the Delivery
        pass
