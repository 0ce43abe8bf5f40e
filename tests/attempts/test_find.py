"""Finding a run's attempts on the store: the newest run by default, unknown runs and stages named,
a cached attempt followed to the attempt that ran."""

from __future__ import annotations

import pytest

from nbops.attempts.find import attempt, run_key_of, that_ran
from nbops.errors import InputError
from nbops.spec import load_pipeline
from nbops.storage import open_store
from tests.conftest import Project

pytestmark = pytest.mark.integration


def test_runs_attempts_and_reuse_are_found_as_stored(project: Project) -> None:
    nb = project.add_notebook("a", [("n = 1", ["parameters"]), ("print(n)", [])])
    project.write_spec({"name": "fd", "stages": {"a": {"notebook": nb}}})
    pipeline = load_pipeline(project.pipeline)
    store = open_store(project.root)
    with pytest.raises(InputError, match=r"pipeline 'fd' has no run under .* yet; run it with: nbops run"):
        run_key_of(store, pipeline, None)
    for run in ("20261201T000000Z-aaaaaa", "20261202T000000Z-bbbbbb"):
        assert project.nbops("run", "pipeline.yaml", "--run-id", run).returncode == 0
    assert run_key_of(store, pipeline, None) == "20261202T000000Z-bbbbbb"
    with pytest.raises(InputError, match=r"run 'nope': no such run of pipeline 'fd' .*the newest is 20261202T"):
        run_key_of(store, pipeline, "nope")
    cached = attempt(store, pipeline, run_key_of(store, pipeline, "20261202T000000Z-bbbbbb"), "a")
    assert cached.manifest() is not None and cached.manifest().status == "cached"  # type: ignore[union-attr]
    ran = that_ran(cached)
    assert (ran.run_key, ran.number) == ("20261201T000000Z-aaaaaa", 1)
    assert b'"print(n)"' in (ran.notebook() or b"") and cached.notebook() is None
    assert cached.start() is not None and cached.start().reuses == ran.location  # type: ignore[union-attr]
    with pytest.raises(InputError, match=r"not a stage of .*stages: a"):
        attempt(store, pipeline, ran.run_key, "zz")
    with pytest.raises(InputError, match=r"stage 'a' has no attempt 4 in run .* \(attempts: \[1\]\)"):
        attempt(store, pipeline, ran.run_key, "a", 4)
