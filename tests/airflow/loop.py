"""A small retraining loop for the DAG tests: data, a registered sklearn model and a drift monitor.

``prepare`` writes a batch for its run date, ``fit`` registers a tiny classifier and logs
``accuracy`` (the gate's metric), ``report`` (optional) reads nothing; the monitor notebook
reads the champion's batch and reports the drift score it is given as a parameter, so a
test decides whether the trigger holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import Project

MODEL = "loop-model"
MONITOR_SECRET = "drift-webhook"

PREPARE = [
    (
        "as_of: str = '2026-01-01'  # the day of the batch\nrows: int = 40  # rows in the batch\n"
        "pause: float = 0.0  # seconds to sleep first (a stage a test can kill mid-cell)",
        ["parameters"],
    ),
    ("import time\ntime.sleep(pause)", []),
    (
        "import numpy as np\nimport nbops\n"
        "rng = np.random.default_rng(0)\nx = rng.normal(size=(rows, 2))\ny = (x[:, 0] + 0.3 * x[:, 1] > 0).astype(int)\n"
        "np.savetxt(nbops.output_dir() / 'batch.csv', np.column_stack([x, y]), delimiter=',')",
        [],
    ),
]


def fit_cells(model: str = MODEL) -> list[tuple[str, list[str]]]:
    """The ``fit`` notebook registering ``model``; ``bonus`` is added to its accuracy, so that a
    test decides which of two challengers is better."""
    return [
        ("C: float = 1.0  # inverse regularization\nbonus: float = 0.0  # added to the accuracy", ["parameters"]),
        (
            "import numpy as np\nimport nbops\nfrom sklearn.linear_model import LogisticRegression\n"
            "data = np.loadtxt(nbops.input_dir('prepare') / 'batch.csv', delimiter=',')\n"
            "model = LogisticRegression(C=C).fit(data[:, :2], data[:, 2])\n"
            f"nbops.log_model(model, registered_model_name='{model}')",
            [],
        ),
        ("accuracy = float(model.score(data[:, :2], data[:, 2])) + bonus", ["metrics"]),
    ]


FIT = fit_cells()
REPORT = [("print('report')", [])]
WATCH = [
    ("drift: float = 0.0  # the drift score to report\nas_of: str = ''  # the day checked", ["parameters"]),
    (
        "import nbops\nrows = len((nbops.input_dir('prepare') / 'batch.csv').read_text().splitlines())\n"
        "assert rows > 0",
        [],
    ),
    ("drift_score = drift", ["metrics"]),
]


def loop_project(
    root: Path,
    name: str = "loop",
    approval: str = "manual",
    schedule: str | None = "@daily",
    report: bool = False,
    model: str = MODEL,
    stage: dict[str, Any] | None = None,
    spec: str = "pipeline.yaml",
    **extra: Any,
) -> Project:
    """The loop pipeline in ``root/spec`` (not promoted); ``stage``: settings added to both stages
    (retries, timeout). Another pipeline of the same project registering another ``model`` gets
    a ``fit`` notebook of its own."""
    project = Project(root)
    fit = "fit" if model == MODEL else f"fit-{model}"
    stages: dict[str, Any] = {
        "prepare": {
            "notebook": project.add_notebook("prepare", PREPARE),
            "parameters": {"as_of": "${run_date}"},
            **(stage or {}),
        },
        "fit": {"notebook": project.add_notebook(fit, fit_cells(model)), "needs": ["prepare"], **(stage or {})},
    }
    if report:
        stages["report"] = {"notebook": project.add_notebook("report", REPORT), "needs": ["fit"]}
    project.write_spec(
        {
            "name": name,
            "schedule": schedule,
            "stages": stages,
            "retrain": {"model": model, "stage": "fit", "metric": "accuracy", "approval": approval},
            "monitor": {
                "notebook": project.add_notebook("watch", WATCH),
                "schedule": "0 6 * * *",
                "parameters": {"as_of": "${run_date}"},
                "trigger": {"metric": "drift_score", "above": 0.5},
                "secrets": [MONITOR_SECRET],
            },
            **extra,
        },
        spec,
    )
    return project
