"""One small notebook per failure mode, all run through the real ``nbops run`` command line.

Each case asserts the exit code, what was archived, the MLflow status and that the
downstream stage did not run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import Project, read_json

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Case:
    notebook: str
    exit_code: int
    status: str  # nbops.status tag / "none" when nothing may start
    failed_cell: int | None = None
    error: str = ""
    params: tuple[str, ...] = ()
    cell_timeout: int | None = None
    timeout: int | None = None


CASES = {
    "cell_raises": Case("cell_raises", 1, "failed", failed_cell=2, error="ValueError"),
    "kernel_dies": Case("kernel_dies", 3, "kernel_died", failed_cell=2, error="DeadKernelError"),
    "cell_timeout": Case("cell_timeout", 1, "cell_timed_out", failed_cell=2, error="CellTimeoutError", cell_timeout=3),
    "kernel_sigkill": Case("kernel_sigkill", 3, "kernel_died", failed_cell=2, error="DeadKernelError"),
    "memory_exhausted": Case("memory_exhausted", 1, "failed", failed_cell=2, error="MemoryError"),
    "sys_exit_one": Case("sys_exit_one", 1, "failed", failed_cell=2, error="SystemExit"),
    "magic_raises": Case("magic_raises", 1, "failed", failed_cell=2, error="ZeroDivisionError"),
    "cell_never_ends": Case("cell_never_ends", 1, "stage_timed_out", failed_cell=2, error="StageTimeout", timeout=8),
    "malformed_json": Case("malformed", 2, "none"),
    "kernelspec_other_language": Case("kernelspec_other_language", 2, "none"),
    "unknown_parameter": Case("params", 2, "none", params=("s.limt=4",)),
    "wrong_type": Case("params", 2, "none", params=("s.limit=four",)),
}


def _pipeline(project: Project, case: Case) -> None:
    stage: dict[str, Any] = {"notebook": project.add_notebook("s", copy=f"{case.notebook}.ipynb")}
    if case.cell_timeout:
        stage["cell_timeout"] = case.cell_timeout
    if case.timeout:
        stage["timeout"] = case.timeout
    project.write_spec(
        {
            "name": "faults",
            "stages": {
                "s": stage,
                "down": {"notebook": project.add_notebook("down", [("y = 1", [])]), "needs": ["s"]},
                "side": {"notebook": project.add_notebook("side", [("z = 1", [])])},
            },
        }
    )


@pytest.mark.parametrize("name", list(CASES))
def test_failure_mode(project: Project, name: str) -> None:
    case = CASES[name]
    _pipeline(project, case)
    args = ["run", "pipeline.yaml", "--jobs", "2"]
    for p in case.params:
        args += ["-p", p]
    result = project.nbops(*args)
    output = result.stdout + result.stderr
    assert result.returncode == case.exit_code, output

    if case.status == "none":
        # Bad input: nothing started, the message names the file, no traceback dump.
        assert "Traceback" not in output
        assert "s.ipynb" in output
        assert not project.attempts("faults", "s")
        assert not project.attempts("faults", "side")
        if name == "unknown_parameter":
            assert "unknown parameter 'limt'" in output and "did you mean 'limit'" in output
        if name == "wrong_type":
            assert "expects int" in output
        if name == "kernelspec_other_language":
            assert "metadata.kernelspec.name" in output and "'ir'" in output
        return

    # The partial notebook is archived, with the failed cell marked and nothing after it run.
    (attempt,) = project.attempts("faults", "s")
    assert not (attempt / "manifest.json").exists()
    executed = read_json(attempt / "output.ipynb")
    assert (attempt / "output.html").stat().st_size > 0
    assert executed["metadata"]["nbops"]["status"] == case.status
    assert executed["metadata"]["nbops"]["failed_cell"] == case.failed_cell
    failed = executed["cells"][case.failed_cell]
    assert failed["metadata"]["papermill"]["status"] == "failed"
    assert any(o["output_type"] == "error" and o["ename"] == case.error for o in failed["outputs"])
    assert "".join(executed["cells"][1]["outputs"][0]["text"]) == "before\n"
    assert executed["cells"][-1]["execution_count"] is None

    # Downstream did not run; the unrelated branch finished; the resume command is printed.
    assert not project.attempts("faults", "down")
    (side,) = project.attempts("faults", "side")
    assert (side / "manifest.json").exists()
    assert "--from s" in result.stderr

    runs = {r.data.tags.get("nbops.stage", "parent"): r for r in project.runs("faults")}
    assert runs["s"].info.status == "FAILED"
    assert runs["s"].data.tags["nbops.status"] == case.status
    assert runs["s"].data.tags["nbops.failed_cell"] == str(case.failed_cell)
    assert runs["s"].data.tags["nbops.error"] == case.error
    assert runs["parent"].info.status == "FAILED"
    assert runs["side"].info.status == "FINISHED"
    assert "down" not in runs
    artifacts = {a.path for a in project.client().list_artifacts(runs["s"].info.run_id)}
    assert {"output.ipynb", "output.html"} <= artifacts


@pytest.mark.parametrize(
    ("copy", "status", "metrics"),
    [
        ("sys_exit_zero.ipynb", "stopped", {}),
        ("raises_allowed.ipynb", "succeeded", {"ok": 1.0}),
        ("kernelspec_language_only.ipynb", "succeeded", {}),
        ("prints_megabytes.ipynb", "succeeded", {"done": 1.0}),
    ],
)
def test_documented_non_failures_succeed(project: Project, copy: str, status: str, metrics: dict[str, float]) -> None:
    """sys.exit(0) stops the notebook early and succeeds; a raises-exception cell may raise."""
    project.write_spec({"name": "faults", "stages": {"s": {"notebook": project.add_notebook("s", copy=copy)}}})
    result = project.nbops("run")
    assert result.returncode == 0, result.stdout + result.stderr
    (attempt,) = project.attempts("faults", "s")
    manifest = read_json(attempt / "manifest.json")
    assert (manifest["status"], manifest["metrics"]) == (status, metrics)
    if status == "stopped":
        assert read_json(attempt / "output.ipynb")["cells"][-1]["execution_count"] is None  # never ran


@pytest.mark.parametrize("override", [(), ("s.limit=7",)])
def test_the_failed_cell_is_its_source_index_with_or_without_overrides(
    project: Project, override: tuple[str, ...]
) -> None:
    """Markdown and an old Papermill error-marker cell precede the failing cell; the injected
    parameters cell is added only with overrides. The record names source cell 6 either way."""
    project.write_spec(
        {
            "name": "faults",
            "stages": {"s": {"notebook": project.add_notebook("s", copy="markdown_and_error_markers.ipynb")}},
        }
    )
    args = ["run"] + [a for p in override for a in ("-p", p)]
    result = project.nbops(*args)
    assert result.returncode == 1, result.stderr
    assert "cell 6 (In [" in result.stderr and "raised ValueError: source cell 6 fails" in result.stderr
    (attempt,) = project.attempts("faults", "s")
    meta = read_json(attempt / "output.ipynb")["metadata"]["nbops"]
    assert (meta["status"], meta["failed_cell"]) == ("failed", 6)
    (run,) = [r for r in project.runs("faults") if r.data.tags.get("nbops.kind") == "stage"]
    assert run.data.tags["nbops.failed_cell"] == "6"
    assert isinstance(meta["failed_execution_count"], int)
    assert run.data.tags["nbops.failed_execution_count"] == str(meta["failed_execution_count"])
