from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat
import pytest

from nbops.notebook.execute import SOURCE_INDEX, execute, parameterize
from nbops.notebook.redact import Redactor
from nbops.status import StageStatus
from tests.conftest import notebook
from tests.notebook.conftest import Run

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-Value-4242"


@pytest.mark.parametrize("params", [{}, {"limit": 7}], ids=["defaults", "injected"])
def test_the_failing_cell_is_named_by_its_source_index(run_notebook: Run, params: dict[str, int]) -> None:
    """Source cell 6 fails after markdown cells and an old error marker (cell 4), which
    Papermill removes; with parameters an injected cell is added too. Same number either way."""
    done = run_notebook("markdown_and_error_markers", params)
    outcome = done.outcome
    assert (outcome.status, outcome.cell_index, outcome.ename) == (StageStatus.FAILED, 6, "ValueError")
    assert outcome.execution_count == (4 if params else 3)
    assert done.archived["metadata"]["nbops"] == {
        "status": "failed",
        "failed_cell": 6,
        "failed_execution_count": outcome.execution_count,
        "error": "ValueError",
        "limit": None,
        "skipped_cells": [],
    }
    cells = done.archived["cells"]
    assert not any("papermill-error-cell-tag" in c["metadata"].get("tags", []) for c in cells)
    assert not any(SOURCE_INDEX in c["metadata"] for c in cells)  # the stamp never reaches the archive
    assert len(cells) == (8 if params else 7)


def test_skipped_and_metrics_cells_keep_their_source_indices(run_notebook: Run) -> None:
    nb = notebook(
        [
            ("limit = 1", ["parameters"]),
            ("raise RuntimeError('exploration only')", ["skip"]),
            ("score = limit * 2", ["metrics"]),
        ]
    )
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("old marker", metadata={"tags": ["papermill-error-cell-tag"]}))
    done = run_notebook(nb, {"limit": 5})
    assert done.outcome.status is StageStatus.SUCCEEDED
    assert done.outcome.skipped_cells == [2]
    assert done.outcome.metrics == {"score": 10.0}
    assert done.archived["metadata"]["nbops"]["failed_cell"] is None


def test_execute_leaves_its_input_alone(tmp_path: Path) -> None:
    nb = notebook([("x = 1", ["parameters"]), ("print(x)", [])])
    prepared = parameterize(nb, {"x": 2}, "nb")
    before = copy.deepcopy(prepared)
    _, outcome = execute(
        prepared, input_path=tmp_path / "in.ipynb", output_path=tmp_path / "out.ipynb", cwd=tmp_path,
        cell_timeout=None, kernel_env=dict,
    )  # fmt: skip
    assert outcome.status is StageStatus.SUCCEEDED
    assert prepared == before  # a retry can run the same prepared notebook again


def test_big_outputs_are_masked_at_linear_cost(
    run_notebook: Run, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Six cells print 500 kB each and a secret; the notebook is saved twice per cell. Masking
    the whole notebook on each save would scan about 13 x 1.5 MB; here each output is masked
    once for the archive and once on its way to the stage's log."""
    monkeypatch.setenv("WAREHOUSE_TOKEN", SECRET)
    scanned = []
    text = Redactor.text

    def counting(self: Redactor, value: str) -> str:
        scanned.append(len(value))
        return text(self, value)

    monkeypatch.setattr(Redactor, "text", counting)
    cells, size = 6, 500_000
    lines = size // 101
    source = f"import os\nprint(('0' * 100 + '\\n') * {lines})\nprint('token', os.environ['WAREHOUSE_TOKEN'])"
    done = run_notebook(notebook([(source, []) for _ in range(cells)]))
    assert done.outcome.status is StageStatus.SUCCEEDED
    printed = cells * lines * 101
    assert sum(scanned) < 2.5 * printed
    archived = done.archive.read_text()
    assert SECRET not in archived and archived.count("token ***") == cells
    assert SECRET not in json.dumps(done.notebook)
    assert SECRET not in capsys.readouterr().out  # the cells' output echoed to the stage's log
    assert archived == nbformat.writes(nbformat.reads(archived, as_version=4)) + "\n"


def test_a_notebook_printing_megabytes(run_notebook: Run) -> None:
    done = run_notebook("prints_megabytes")
    assert done.outcome.status is StageStatus.SUCCEEDED
    assert done.outcome.metrics == {"done": 1.0}
    assert done.archive.stat().st_size > 4_000_000


def test_the_runner_environment_leaves_no_warnings_in_the_notebook(run_notebook: Run) -> None:
    """tqdm.auto (imported by MLflow) warned without ipywidgets; MLflow warned without pip when a
    model's environment was written; MLflow's artifact progress bars are not the notebook's."""
    done = run_notebook(
        notebook(
            [
                ("from tqdm.auto import tqdm\nfor _ in tqdm(range(2)): pass", []),
                (
                    "from mlflow.utils.environment import _mlflow_conda_env\nenv = _mlflow_conda_env(install_mlflow=True)",
                    [],
                ),
                ("import os\nprint(os.environ['MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR'], os.environ['STAGE_VAR'])", []),
            ]
        ),
        kernel_env=lambda: {"STAGE_VAR": "given"},
    )
    assert done.outcome.status is StageStatus.SUCCEEDED
    outputs = [o for c in done.archived["cells"] for o in c["outputs"]]
    assert not [o for o in outputs if o.get("name") == "stderr"], outputs
    assert outputs[-1]["text"] == ["false given\n"]
