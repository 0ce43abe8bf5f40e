"""What the benchmarks share: the tools of this environment and a one-stage pipeline."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent


def one_stage(work: Path, notebook: str, stage: str) -> tuple[list[str], list[str]]:
    """Write ``work/pipeline.yaml`` running ``notebook`` as ``stage``.

    Returns the stage command (append a run id) and the bare Papermill command on the same
    notebook: the pair every benchmark compares.
    """
    (work / "pipeline.yaml").write_text(yaml.safe_dump({"name": "bench", "stages": {stage: {"notebook": notebook}}}))
    nbops = [str(BIN / "nbops"), "exec-stage", "--pipeline", "pipeline.yaml", "--stage", stage, "--run-id"]
    papermill = [str(BIN / "papermill"), "--no-progress-bar", notebook, "out.ipynb"]
    return nbops, papermill
