"""The attempt's start record (attempt.json): what every attempt ran with, failed ones included."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from nbops.environment import current
from nbops.errors import InfraError
from nbops.storage.start import AttemptStart, origins, parse_start
from tests.conftest import Project


def test_a_value_comes_from_the_point_over_the_run_over_the_spec_over_the_notebook() -> None:
    found = origins(["a", "b", "c", "d"], spec={"b": 1, "c": 1, "d": 1}, given={"c": 2, "d": 2}, point={"d": 3})
    assert found == {"a": "notebook", "b": "spec", "c": "run", "d": "point"}


def test_a_damaged_record_is_named_with_what_is_wrong() -> None:
    with pytest.raises(
        InfraError, match=r"s3://b/attempt.json: not a readable attempt record\n  - stage: Field required"
    ):
        parse_start(b'{"pipeline": "p", "run_id": "r", "attempt": 1}', "s3://b/attempt.json")


@pytest.mark.integration
def test_every_attempt_records_its_parameters_origins_inputs_and_environment(project: Project) -> None:
    make = project.add_notebook("make", [("rows = 10\nscale = 1.0\nseed = 0", ["parameters"]), ("pass", [])])
    use = project.add_notebook(
        "use", [("limit = 1", ["parameters"]), ("import nbops\nnbops.input_dir('make')\nassert limit > 5", [])]
    )
    project.write_spec(
        {
            "name": "st",
            "stages": {
                "make": {"notebook": make, "parameters": {"scale": 2.0}},
                "use": {"notebook": use, "needs": ["make"]},
            },
        }
    )
    done = project.nbops("run", "pipeline.yaml", "-p", "make.seed=7", "--run-id", "r1")
    assert done.returncode == 1, done.stderr  # 'use' fails: limit is 1
    make_dir, use_dir = project.attempts("st", "make")[0], project.attempts("st", "use")[0]
    made = AttemptStart.model_validate_json((make_dir / "attempt.json").read_bytes())
    assert {k: (p.value, p.origin) for k, p in made.parameters.items()} == {
        "rows": (10, "notebook"),
        "scale": (2.0, "spec"),
        "seed": (7, "run"),
    }
    assert made.packages == current().packages and made.notebook.path == make
    sealed = json.loads((make_dir / "manifest.json").read_bytes())
    assert "attempt.json" in [f["path"] for f in sealed["files"]]  # sealed with the rest
    used = AttemptStart.model_validate_json((use_dir / "attempt.json").read_bytes())
    assert not (use_dir / "manifest.json").exists()  # failed: the start record is all there is
    assert [(i.stage, i.attempt, i.manifest_sha256) for i in used.inputs] == [("make", 1, sealed_sha(make_dir))]


def sealed_sha(attempt_dir: Path) -> str:
    return hashlib.sha256((attempt_dir / "manifest.json").read_bytes()).hexdigest()
