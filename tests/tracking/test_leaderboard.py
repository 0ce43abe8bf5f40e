"""A sweep's leaderboard: rows best first by the gate's metric (the first in point order among
equals, rows without the metric last), CSV and escaped HTML, and the summary lines."""

from __future__ import annotations

import csv
import io

import pytest

from nbops.tracking.leaderboard import Board, Row

pytestmark = pytest.mark.unit


def _row(index: int, score: float | None, status: str = "succeeded") -> Row:
    return Row(
        index=index,
        label=f"train[{index}] C={index}",
        parameters={"C": index, "tags": ["<b>"]},
        metrics={} if score is None else {"score": score},
        status=status,
        attempt="1",
        mlflow_run=f"m{index}",
    )


def test_rows_are_ranked_by_the_metric_in_its_direction_then_those_without_it() -> None:
    rows = (_row(0, 0.5), _row(1, 0.9), _row(2, None, "failed"), _row(3, 0.9))
    best_high = Board("train", rows, "score", "maximize")
    assert [r.index for r in best_high.ranked()] == [1, 3, 0, 2]
    assert [r.index for r in Board("train", rows, "score", "minimize").ranked()] == [0, 1, 3, 2]
    assert [r.index for r in Board("train", rows).ranked()] == [0, 1, 2, 3]  # no metric: point order
    table = list(csv.reader(io.StringIO(best_high.to_csv())))
    assert table[0] == ["point", "C", "tags", "score", "status", "attempt", "mlflow_run"]
    assert table[1] == ["train[1]", "1", '["<b>"]', "0.9", "succeeded", "1", "m1"]
    assert table[-1][3] == "" and table[-1][4] == "failed"
    page = best_high.to_html()
    assert "&lt;b&gt;" in page and "<b>" not in page.split("<body>")[1]
    assert "best first by score (maximize)" in page
    assert best_high.summary() == [
        "Sweep of 'train': 4 point(s), 1 failed; sweeps/train.csv",
        "  1. train[1] C=1: score = 0.9",
        "  2. train[3] C=3: score = 0.9",
        "  3. train[0] C=0: score = 0.5",
    ]
    assert Board("train", rows).summary() == ["Sweep of 'train': 4 point(s), 1 failed; sweeps/train.csv"]
