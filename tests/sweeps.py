"""A small swept pipeline for the tests: ``prep`` writes rows (and, for ``foreach_from``, a list of
parameter sets), ``train`` is swept over ``C`` and ``penalty``, scores each point deterministically
and registers a model, ``pick`` reads every point through ``nbops.input_dirs``."""

from __future__ import annotations

from typing import Any

from tests.conftest import Project

GRID = {"C": [0.1, 1.0, 10.0], "penalty": ["l1", "l2"]}
MODEL = "sweep-model"


def score(c: float, penalty: str) -> float:
    """What the ``train`` notebook logs as ``score`` for a point (best: C=1.0, l2)."""
    return round(1.0 - abs(c - 1.0) / 20 + (0.01 if penalty == "l2" else 0.0), 6)


def sweep_project(
    project: Project, sweep: dict[str, Any] | None = None, register: bool = False, gate: bool = False
) -> Project:
    """The pipeline with ``train`` swept as ``sweep`` says (default: the 3 x 2 ``GRID``). A point fails
    while ``fail-C<value>`` exists in the project's directory (a file a test removes to let it pass)."""
    project.add_notebook(
        "prep",
        [
            (
                "import json, nbops\nout = nbops.output_dir()\n(out / 'rows.json').write_text(json.dumps([1, 2, 3]))\n"
                "(out / 'sets.json').write_text(json.dumps([{'C': 0.5}, {'C': 2.0, 'penalty': 'l1'}]))",
                [],
            )
        ],
    )
    register_cell = (
        "from sklearn.dummy import DummyClassifier\n"
        "model = DummyClassifier().fit([[0], [1]], [0, 1])\n"
        f"nbops.log_model(model, name='model', registered_model_name='{MODEL}', pip_requirements=['scikit-learn'])"
    )
    project.add_notebook(
        "train",
        [
            ("C = 1.0\npenalty = 'l2'", ["parameters"]),
            (
                "import json, pathlib, nbops\n"
                "rows = json.loads((nbops.input_dir('prep') / 'rows.json').read_text())\n"
                "if pathlib.Path(f'../fail-C{C}').exists():\n    raise ValueError(f'point C={C} told to fail')\n"
                "(nbops.output_dir() / 'point.json').write_text(json.dumps({'C': C, 'penalty': penalty}))",
                [],
            ),
            *([(register_cell, [])] if register else []),
            (
                "score = round(1.0 - abs(C - 1.0) / 20 + (0.01 if penalty == 'l2' else 0.0), 6)\nsize = len(rows)",
                ["metrics"],
            ),
        ],
    )
    project.add_notebook(
        "pick",
        [
            (
                "import json, nbops\npoints = nbops.input_dirs('train')\n"
                "seen = [[p, json.loads((d / 'point.json').read_text())] for p, d in points]\n"
                "(nbops.output_dir() / 'seen.json').write_text(json.dumps(seen))",
                [],
            )
        ],
    )
    train: dict[str, Any] = {"notebook": "nb/train.ipynb", "needs": ["prep"], **(sweep or {"grid": GRID})}
    spec: dict[str, Any] = {
        "name": "sweep",
        "stages": {
            "prep": {"notebook": "nb/prep.ipynb"},
            "train": train,
            "pick": {"notebook": "nb/pick.ipynb", "needs": ["train"]},
        },
    }
    if gate:
        spec["retrain"] = {"model": MODEL, "stage": "train", "metric": "score"}
    project.write_spec(spec)
    return project


def point_runs(project: Project) -> list[Any]:
    """The MLflow stage runs of ``train``'s points, by point index."""
    runs = [r for r in project.runs("sweep") if r.data.tags.get("nbops.stage") == "train"]
    return sorted(runs, key=lambda r: (r.data.tags["nbops.run_id"], int(r.data.tags["nbops.point"])))
