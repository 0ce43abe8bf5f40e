"""A swept stage's leaderboard (DESIGN §17): one row per point, from its last attempt's stage run,
on the pipeline run as ``sweeps/<stage>.csv`` and ``sweeps/<stage>.html``. Both backends write it
when the pipeline run closes (``nbops run``, the DAG's ``close_run``)."""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbops.tracking import query, record, tags

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from nbops.spec import Pipeline

ARTIFACT_DIR = "sweeps"
SHOWN = 3
"""Points ``nbops run`` prints per sweep."""


@dataclass(frozen=True)
class Row:
    """One point of a sweep as its last attempt ended."""

    index: int
    label: str
    parameters: dict[str, Any]
    metrics: dict[str, float]
    status: str
    attempt: str
    mlflow_run: str


@dataclass(frozen=True)
class Board:
    """A swept stage's rows, best first when there is a metric to rank by."""

    stage: str
    rows: tuple[Row, ...]
    metric: str | None = None
    direction: str = "maximize"

    def ranked(self) -> list[Row]:
        """The rows with the metric, best first (the first in point order among equals), then the rest."""
        if self.metric is None:
            return list(self.rows)
        metric, sign = self.metric, (1.0 if self.direction == "maximize" else -1.0)
        have = [r for r in self.rows if metric in r.metrics]
        have.sort(key=lambda r: (-sign * r.metrics[metric], r.index))
        return have + [r for r in self.rows if metric not in r.metrics]

    def columns(self) -> tuple[list[str], list[str]]:
        """The parameter and metric names any row has, in the order first met."""
        params = list(dict.fromkeys(k for r in self.rows for k in r.parameters))
        metrics = list(dict.fromkeys(k for r in self.rows for k in sorted(r.metrics)))
        return params, metrics

    def table(self) -> list[list[str]]:
        """Header and rows as text, best first."""
        params, metrics = self.columns()
        head = ["point", *params, *metrics, "status", "attempt", "mlflow_run"]
        body = [
            [
                f"{self.stage}[{r.index}]",
                *(_text(r.parameters.get(k, "")) for k in params),
                *(f"{r.metrics[k]:g}" if k in r.metrics else "" for k in metrics),
                r.status,
                r.attempt,
                r.mlflow_run,
            ]
            for r in self.ranked()
        ]
        return [head, *body]

    def to_csv(self) -> str:
        """The table as CSV."""
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(self.table())
        return out.getvalue()

    def to_html(self) -> str:
        """The table as a self-contained page (every cell escaped)."""
        head, *body = self.table()
        order = f", best first by {html.escape(self.metric)} ({self.direction})" if self.metric else ""
        cells = "".join(f"<th>{html.escape(c)}</th>" for c in head)
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>sweep {html.escape(self.stage)}</title>"
            "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:3px 8px;text-align:left}tr:nth-child(even){background:#f6f6f6}</style></head><body>"
            f"<h1>Sweep of stage {html.escape(self.stage)}</h1><p>{len(self.rows)} point(s){order}.</p>"
            f"<table><thead><tr>{cells}</tr></thead><tbody>{rows}</tbody></table></body></html>\n"
        )

    def summary(self) -> list[str]:
        """Lines for ``nbops run``: the top points by the metric, when there is one."""
        failed = sum(1 for r in self.rows if r.status not in ("succeeded", "cached"))
        head = f"Sweep of '{self.stage}': {len(self.rows)} point(s), {failed} failed; sweeps/{self.stage}.csv"
        if self.metric is None:
            return [head]
        top = [r for r in self.ranked() if self.metric in r.metrics][:SHOWN]
        return [head, *(f"  {i + 1}. {r.label}: {self.metric} = {r.metrics[self.metric]:g}" for i, r in enumerate(top))]


def boards(client: MlflowClient, experiment: str, pipeline: Pipeline, run_id: str) -> list[Board]:
    """The leaderboard of every swept stage that has attempts in the run."""
    retrain = pipeline.spec.retrain
    found = []
    for stage, spec in pipeline.spec.stages.items():
        if not spec.swept:
            continue
        rows = tuple(_row(run) for run in query.point_attempts(client, experiment, run_id, stage))
        if rows:
            gated = retrain is not None and retrain.stage == stage
            metric = retrain.metric if retrain is not None and gated else None
            found.append(Board(stage, rows, metric, retrain.direction if retrain is not None else "maximize"))
    return found


def publish(client: MlflowClient, parent_id: str, found: list[Board]) -> None:
    """Log each board on the pipeline run as ``sweeps/<stage>.csv`` and ``.html``.

    Raises:
        InfraError: the tracking store refused.
    """
    for board in found:
        for suffix, text in (("csv", board.to_csv()), ("html", board.to_html())):
            name = f"{ARTIFACT_DIR}/{board.stage}.{suffix}"
            record.call(client.log_text, parent_id, text, name, what=f"log {name}")


def _row(run: Any) -> Row:
    values = run.data.tags
    try:
        parameters = json.loads(values.get(tags.POINT_PARAMETERS) or "{}")
    except ValueError:
        parameters = {}
    return Row(
        index=int(values.get(tags.POINT) or 0),
        label=values.get(tags.POINT_LABEL, ""),
        parameters=parameters if isinstance(parameters, dict) else {},
        metrics={k: float(v) for k, v in run.data.metrics.items()},
        status=values.get(tags.STATUS, run.info.status.lower()),
        attempt=values.get(tags.ATTEMPT, ""),
        mlflow_run=run.info.run_id,
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
