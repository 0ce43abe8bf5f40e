"""``nbops diff`` on a remote (S3) store: the same comparison as on a local one, every record,
notebook and upstream manifest read from the store itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbops.attempts.diff import diff_runs
from nbops.attempts.diff_sections import InputChange, Param, ParameterChange
from tests.attempts.test_diff import FIT, PREP
from tests.conftest import Project
from tests.s3server import BUCKET, started

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def nbops(project: Project, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = project.popen(*args, env=env)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def test_two_runs_on_s3_are_compared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for s3 in started():
        env = {**s3.env(), "NBOPS_ARTIFACT_ROOT": f"s3://{BUCKET}/store", "NBOPS_CACHE_DIR": str(tmp_path / "cache")}
        project = Project(tmp_path / "proj")
        project.add_notebook("prep", PREP)
        project.add_notebook("fit", FIT)
        stages = {"prep": {"notebook": "nb/prep.ipynb"}, "fit": {"notebook": "nb/fit.ipynb", "needs": ["prep"]}}
        project.write_spec({"name": "dd", "stages": stages})
        runs = []
        for args in ((), ("-p", "prep.n=5")):
            code, _, err = nbops(project, env, "run", *args)
            assert code == 0, err
            runs.append(err.rsplit("\nRun ", 1)[1].split()[0])
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        result = diff_runs(project.pipeline, *runs)
        prep, fit = result.units
        assert prep.a is not None and prep.a.location.startswith(f"s3://{BUCKET}/store/runs/dd/")
        assert prep.sections[0].changes == (ParameterChange("n", Param(3, "notebook"), Param(5, "run")),)
        (consumed,) = fit.sections[2].changes
        assert isinstance(consumed, InputChange) and consumed.a is not None and consumed.b is not None
        assert consumed.a.run == runs[0] and consumed.a.data_sha256 not in (None, consumed.b.data_sha256)
        assert [c.outputs for c in prep.sections[4].cells] != []
        code, out, err = nbops(project, env, "diff", *runs, "--json")
        assert code == 1, err
        assert json.loads(out)["units"][1]["sections"]["inputs"]["same"] is False
