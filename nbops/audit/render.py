"""Text and HTML renderings of an :class:`~nbops.audit.report.AuditReport`.

The text is a tree for a terminal: hashes cut to 12 characters, checks marked ``ok`` or
``FAILED`` where they belong, every failure repeated in full at the end. The HTML page is
self-contained: one inline ``<style>``, no scripts, no links, no images; every value goes
through :func:`html.escape`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbops.audit.report import (
        AirflowInfo,
        AuditReport,
        ModelInfo,
        ParameterInfo,
        PipelineRunInfo,
        StageNode,
        WhoInfo,
    )
    from nbops.audit.verify import Check

SHORT = 12
_HEX = re.compile(r"^[0-9a-f]{13,}$")
_VALUE_WIDTH = 80
_LABEL = 12


def short(value: str) -> str:
    """A long hex hash cut to 12 characters; anything else unchanged."""
    return value[:SHORT] if _HEX.match(value) else value


def mark(ok: bool) -> str:
    """``ok`` or ``FAILED``."""
    return "ok" if ok else "FAILED"


def value_text(value: Any) -> str:
    """A parameter value as JSON, cut for a line."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 3] + "..."


def dirty_text(commit: str, dirty: bool | None) -> str:
    """A commit, shortened, with ``(dirty)`` when tracked files differed from it."""
    if not commit:
        return ""
    return short(commit) + (" (dirty)" if dirty else "")


def metrics_text(metrics: Mapping[str, float]) -> str:
    """``name = value, ...``, by name."""
    return ", ".join(f"{k} = {v:g}" for k, v in sorted(metrics.items()))


def airflow_text(airflow: AirflowInfo) -> str:
    """The DAG run and task try of a stage attempt."""
    return f"dag {airflow.dag_id}, run {airflow.run_id}, try {airflow.try_number}"


def parameter_text(param: ParameterInfo) -> str:
    """``name = value  (source; default ..., spec ...)``."""
    extra = []
    if param.source != "default" and param.default is not None:
        extra.append(f"notebook default {value_text(param.default)}")
    if param.source == "override" and param.spec is not None:
        extra.append(f"spec {value_text(param.spec)}")
    more = f"; {', '.join(extra)}" if extra else ""
    return f"{param.name} = {value_text(param.value)}  ({param.source}{more})"


# -- text ----------------------------------------------------------------------------------


def text(report: AuditReport) -> str:
    """The report as a tree."""
    lines: list[str] = []
    model = report.subject.model
    if model is not None:
        aliases = f"  (aliases: {', '.join(model.aliases)})" if model.aliases else ""
        lines.append(f"model {model.name} version {model.version}{aliases}")
        lines.extend(_fields("  ", _model_fields(model)))
    else:
        lines.append(f"audit of pipeline run {report.subject.ref}")
    stores = [("tracking", report.subject.tracking_uri), ("artifacts", report.subject.artifact_store)]
    lines.extend(_fields("  ", stores))
    lines.extend(_checks("  ", report.scoped("model")))
    run = report.pipeline_run
    if run is not None:
        lines.append(f"pipeline run {run.pipeline} {run.run_id}")
        lines.extend(_fields("  ", _run_fields(run)))
    lines.extend(_checks("  ", report.scoped("pipeline")))
    if report.stages:
        lines.append("stages, upstream first")
    for i, node in enumerate(report.stages):
        last = i == len(report.stages) - 1
        lines.extend(_node("└─ " if last else "├─ ", "   " if last else "│  ", node, report))
    failures = report.failures
    lines.append("")
    lines.append(report.summary() + (":" if failures else ""))
    lines.extend(f"  - {c.subject}: {c.detail}" for c in failures)
    return "\n".join(lines) + "\n"


def _fields(indent: str, rows: Iterable[tuple[str, str]]) -> Iterator[str]:
    for label, value in rows:
        if not value:
            continue
        first, *rest = value.splitlines() or [""]
        yield f"{indent}{label:<{_LABEL}} {first}"
        yield from (f"{indent}{'':<{_LABEL}} {line}" for line in rest)


def _checks(indent: str, checks: Iterable[Check]) -> Iterator[str]:
    for check in checks:
        yield f"{indent}{mark(check.ok):<6} {check.subject}"


def _model_fields(model: ModelInfo) -> list[tuple[str, str]]:
    return [("registered", model.registered_at or ""), ("source", model.source), ("source run", model.source_run)]


def _run_fields(run: PipelineRunInfo, cut: Callable[[str], str] = short) -> list[tuple[str, str]]:
    rows = [
        ("mlflow run", run.mlflow_run_id),
        ("trigger", run.trigger),
        ("status", run.status),
        ("time", f"{run.started_at or '?'} -> {run.ended_at or 'not ended'}"),
        ("spec", f"{run.spec.path or run.spec.store_path}  sha256 {cut(run.spec.sha256)}" if run.spec else "unknown"),
        ("lock", f"{run.lock.path or run.lock.store_path}  sha256 {cut(run.lock.sha256)}" if run.lock else ""),
        ("commit", dirty_text(run.git_commit, run.git_dirty)),
    ]
    if run.airflow is not None:
        conf = json.dumps(run.airflow.conf, sort_keys=True) if run.airflow.conf is not None else ""
        rows.append(("airflow", f"dag {run.airflow.dag_id}, run {run.airflow.run_id}"))
        rows.append(("logical date", run.airflow.logical_date))
        rows.append(("conf", conf))
    rows.append(("overrides", "\n".join(f"{k} = {v}" for k, v in sorted(run.overrides.items()))))
    rows.append(("reused", " ".join(run.reused)))
    rows.append(("ran by", who_text(run.who)))
    return rows


def who_text(who: WhoInfo | None) -> str:
    """``alice (Airflow) as airflow@worker-1, approved by bob``; ``""`` when nothing was recorded."""
    if who is None:
        return ""
    where = f"{who.user or '?'}@{who.host or '?'}" if who.user or who.host else ""
    parts = [f"{who.triggered_by} (Airflow)" if who.triggered_by else "", f"as {where}" if where else ""]
    text = " ".join(p for p in parts if p).removeprefix("as ")
    if who.approved_by:
        text += f", approved by {who.approved_by}"
    return text.strip(", ")


def model_lines(node: StageNode) -> list[str]:
    """One line per sealed model version: files, digest, signature."""
    return [
        f"{m.name}/{m.version}  {m.files} files  sha256 {short(m.sha256)}  "
        + ("signed" if m.signed else "not signed (no signing key was configured)")
        for m in node.models
    ]


def _node(branch: str, pipe: str, node: StageNode, report: AuditReport) -> Iterator[str]:
    role = {
        "model": "  (registered the model)",
        "upstream": "  (consumed upstream)",
        "reused": "  (reused by a cached attempt)",
    }.get(node.role, "")
    checks = report.scoped(node.key)
    verdict = f"  [{mark(node.ok)}]" if checks else ""
    yield f"{branch}{node.key}  {node.status}{role}{verdict}"
    notebook = node.notebook
    rows = [
        ("mlflow run", node.mlflow_run_id),
        ("time", f"{node.started_at or '?'} -> {node.ended_at or 'not ended'}" if node.mlflow_run_id else ""),
        ("attempt", node.location),
        ("notebook", f"{notebook.path}  sha256 {short(notebook.sha256)}" if notebook else ""),
        ("parameters", "\n".join(parameter_text(p) for p in node.parameters)),
        ("metrics", metrics_text(node.metrics)),
        (
            "inputs",
            "\n".join(f"{i.stage}#{i.attempt}  manifest sha256 {short(i.manifest_sha256)}" for i in node.inputs),
        ),
        ("consumed by", ", ".join(node.consumed_by)),
    ]
    rows.append(("outputs", "\n".join(_output_lines(node, checks))))
    rows.append(("models", "\n".join(model_lines(node))))
    rows.append(("carried", "\n".join(f"{c.path}  sha256 {short(c.sha256)}" for c in node.carried)))
    rows.append(("ran by", who_text(node.who)))
    if node.who is not None and node.who.image_digest:
        rows.append(("image digest", node.who.image_digest))
    where = node.image or node.environment
    if node.packages_sha256:
        where += f"  packages sha256 {short(node.packages_sha256)}"
    rows.append(("image" if node.image else "environment", where))
    rows.append(("commit", dirty_text(node.git_commit, node.git_dirty)))
    rows.append(("lock", short(node.lock_sha256)))
    if node.airflow is not None:
        rows.append(("airflow", airflow_text(node.airflow)))
    if node.failure is not None:
        failure = node.failure
        cell = f"cell {failure.cell}" + (f" [{failure.execution_count}]" if failure.execution_count else "")
        rows.append(("failed", f"{cell}: {failure.error}: {failure.message}".strip(": ")))
    rows.append(("notes", "\n".join(node.notes)))
    yield from _fields(pipe, rows)
    others = [c for c in checks if not c.subject.startswith(f"{node.key} file ")]
    yield from _checks(pipe, others)


def _output_lines(node: StageNode, checks: Iterable[Check]) -> Iterator[str]:
    """One line per output file, with the verdict of its check."""
    file_checks = {c.subject: c for c in checks}
    for out in node.outputs:
        found = file_checks.get(f"{node.key} file {out.path}")
        state = f"  {mark(found.ok)}" if found is not None else ""
        yield f"{out.path}  {out.size} B  sha256 {short(out.sha256)}{state}"


# -- HTML ----------------------------------------------------------------------------------

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #1d2126; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; } h3 { font-size: 1em; margin: 1em 0 .3em; }
table { border-collapse: collapse; margin: .3em 0; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .25em .6em; border-bottom: 1px solid #e3e6ea; }
th { width: 12em; color: #555; font-weight: 600; }
code { font: 12px/1.4 ui-monospace, monospace; word-break: break-all; }
.verdict { padding: .6em 1em; border-radius: 4px; font-weight: 600; }
.pass { background: #e6f4ea; color: #1e6b34; } .fail { background: #fdecea; color: #a12622; }
tr.fail td { background: #fdecea; } tr.pass td.mark { color: #1e6b34; }
tr.fail td.mark { color: #a12622; font-weight: 700; }
section.stage { border: 1px solid #d8dce1; border-radius: 6px; padding: .4em 1em 1em; margin: 1em 0; }
.status { font-weight: 400; color: #555; margin-left: .6em; }
"""


def html(report: AuditReport) -> str:
    """The report as one self-contained page."""
    title = f"nbops audit: {report.subject.ref}"
    failures = report.failures
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="verdict {"fail" if failures else "pass"}">{escape(report.summary())}</p>',
        _table([("tracking", report.subject.tracking_uri), ("artifacts", report.subject.artifact_store)]),
    ]
    if failures:
        parts.append('<section class="failures"><h2>Failed checks</h2><table>')
        parts.extend(_check_row(c) for c in failures)
        parts.append("</table></section>")
    parts.extend(_model_section(report))
    parts.extend(_pipeline_section(report))
    parts.extend(_stage_section(node, report) for node in report.stages)
    parts.append("<section><h2>All checks</h2>" + _checks_table(report.checks) + "</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _model_section(report: AuditReport) -> list[str]:
    model = report.subject.model
    if model is None:
        return []
    rows = [("name", model.name), ("version", model.version), ("aliases", ", ".join(model.aliases))]
    return [
        "<section><h2>Model version</h2>",
        _table(rows + _model_fields(model)),
        _checks_table(report.scoped("model")) + "</section>",
    ]


def _pipeline_section(report: AuditReport) -> list[str]:
    run = report.pipeline_run
    checks = _checks_table(report.scoped("pipeline"))
    if run is None:
        return ["<section><h2>Pipeline run</h2>" + checks + "</section>"] if checks else []
    return [
        f"<section><h2>Pipeline run {escape(run.pipeline)} {escape(run.run_id)}</h2>",
        _table(_run_fields(run, cut=str)),
        checks + "</section>",
    ]


def _table(rows: Iterable[tuple[str, str]]) -> str:
    """A table of labelled values (lines kept apart), leaving out empty values."""
    cells = [_row(label, _code(value).replace("\n", "<br>")) for label, value in rows if value]
    return "<table>" + "".join(cells) + "</table>" if cells else ""


def _titled_table(title: str, rows: list[str], sep: str = "") -> str:
    """``<h3>title</h3>`` over a table of ready rows; ``""`` without rows."""
    return sep.join([f"<h3>{title}</h3><table>", *rows, "</table>"]) if rows else ""


def _row(heading: str, *cells: str) -> str:
    """A row: the heading escaped, the cells (markup) as they are."""
    return f"<tr><th>{escape(heading)}</th>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _code(value: str) -> str:
    return f"<code>{escape(value)}</code>"


def _check_row(check: Check) -> str:
    state = "pass" if check.ok else "fail"
    return (
        f'<tr class="{state}"><td class="mark">{escape(mark(check.ok))}</td>'
        f"<td>{escape(check.subject)}</td><td>{_code(check.detail)}</td></tr>"
    )


def _checks_table(checks: Iterable[Check]) -> str:
    return _titled_table("Checks", [_check_row(c) for c in checks])


def _stage_section(node: StageNode, report: AuditReport) -> str:
    tables = [
        _titled_table("Parameters", [_parameter_row(p) for p in node.parameters], "\n"),
        _titled_table(
            "Inputs",
            [_row(f"{i.stage}#{i.attempt}", _code(i.manifest_sha256), _code(i.location)) for i in node.inputs],
            "\n",
        ),
        _titled_table("Outputs", [_row(o.path, f"{o.size} B", _code(o.sha256)) for o in node.outputs], "\n"),
        _titled_table(
            "Models",
            [
                _row(
                    f"{m.name}/{m.version}", f"{m.files} files", _code(m.sha256), "signed" if m.signed else "not signed"
                )
                for m in node.models
            ],
            "\n",
        ),
        _titled_table("Carried files", [_row(c.path, _code(c.sha256), _code(c.location)) for c in node.carried], "\n"),
    ]
    return "\n".join(
        [
            f'<section class="stage"><h2>{escape(node.key)}<span class="status">{escape(node.status)}</span></h2>',
            _table(_stage_fields(node)),
            *(table for table in tables if table),
            _checks_table(report.scoped(node.key)),
            "</section>",
        ]
    )


def _stage_fields(node: StageNode) -> list[tuple[str, str]]:
    notebook = node.notebook
    rows = [
        ("role", node.role),
        ("mlflow run", node.mlflow_run_id),
        ("started", node.started_at or ""),
        ("ended", node.ended_at or ""),
        ("finished", node.finished_at or ""),
        ("attempt", node.location),
        ("notebook", f"{notebook.path}  sha256 {notebook.sha256}" if notebook else ""),
        ("notebook copy", notebook.location if notebook else ""),
        ("metrics", metrics_text(node.metrics)),
        ("consumed by", ", ".join(node.consumed_by)),
        ("image", node.image),
        ("environment", node.environment),
        ("packages sha256", node.packages_sha256),
        ("commit", node.git_commit + (" (dirty)" if node.git_dirty else "")),
        ("lock sha256", node.lock_sha256),
        ("ran by", who_text(node.who)),
        ("image digest", node.who.image_digest if node.who is not None else ""),
    ]
    if node.airflow is not None:
        rows.append(("airflow", airflow_text(node.airflow)))
    if node.failure is not None:
        f = node.failure
        rows.append(("failed", f"cell {f.cell} [{f.execution_count}] {f.error}: {f.message}"))
    rows.append(("notes", "\n".join(node.notes)))
    return rows


def _parameter_row(param: ParameterInfo) -> str:
    return _row(param.name, _code(value_text(param.value)), escape(param.source), _code(parameter_text(param)))
