"""The stage command's driver: phases chained as records, slots called, a failure told with where it failed."""

from __future__ import annotations

import dataclasses
import json

import pytest

from nbops.stage import lifecycle
from nbops.stage.command import probe_reuse
from nbops.stage.result import StageRequest
from nbops.stage.slots import AttemptHooks, CacheHit, Upstream
from tests.conftest import Project

FAILS = [("x = 1", ["parameters"]), ("print('before')", []), ("y = x + 1\nx.foo()", [])]


@pytest.mark.integration
def test_a_failure_names_the_source_line_the_traceback_and_the_executed_notebook(project: Project) -> None:
    project.write_spec({"name": "told", "stages": {"s": {"notebook": project.add_notebook("s", FAILS)}}})
    result_file = project.root / "result.json"
    ran = project.nbops(
        "exec-stage", "--pipeline", "pipeline.yaml", "--stage", "s", "--run-id", "r1", "--result-file", str(result_file)
    )
    assert ran.returncode == 1, ran.stderr
    result = json.loads(result_file.read_text())
    (attempt,) = project.attempts("told", "s")
    notebook = f"executed notebook: {attempt}/output.ipynb"
    assert result["message"] == "cell 2 (In [3]) raised AttributeError: 'int' object has no attribute 'foo'"
    assert result["detail"][0].startswith("at ---->") and "x.foo()" in result["detail"][0]
    assert any("AttributeError: 'int' object has no attribute 'foo'" in line for line in result["detail"])
    assert result["detail"][-1] == notebook
    for line in result["detail"]:  # the stage's own log (stderr) says the same, under the failure line
        assert f"nbops:   {line}" in ran.stderr
    assert ran.stderr.index("raised AttributeError") < ran.stderr.index("at ---->")


@pytest.mark.integration
def test_nbops_run_tells_the_failure_once_with_where_it_failed(project: Project) -> None:
    project.write_spec({"name": "told", "stages": {"s": {"notebook": project.add_notebook("s", FAILS)}}})
    ran = project.nbops("run", "pipeline.yaml")
    assert ran.returncode == 1, ran.stderr
    assert ran.stderr.count("raised AttributeError") == 1, ran.stderr  # not repeated by the log's tail
    assert "| at ----> " in ran.stderr and "x.foo()" in ran.stderr
    assert "| executed notebook: " in ran.stderr and "/output.ipynb" in ran.stderr
    assert "log: " in ran.stderr


class _Recording(AttemptHooks):
    """Fills every attempt slot and notes what it was given."""

    def __init__(self, upstream: Upstream | None = None) -> None:
        self.given: list[str] = []
        self.answer = upstream

    def upstream(self, prepared: lifecycle.Prepared) -> Upstream | None:
        self.given.append(f"upstream {prepared.stage.name}")
        return self.answer

    def reuse_key(self, located: lifecycle.Located) -> str | None:
        self.given.append(f"key {sorted(located.inputs)}")
        return "k" * 64

    def before_claim(self, located: lifecycle.Located, key: str) -> CacheHit | None:
        self.given.append(f"lookup {key[:3]}")
        return None


@pytest.mark.unit
def test_phases_pass_frozen_records_and_call_the_slots_in_order(project: Project) -> None:
    project.write_spec({"name": "slots", "stages": {"s": {"notebook": project.add_notebook("s", FAILS[:2])}}})
    request = StageRequest(project.pipeline, "s", "r1", params={"x": 5})
    hooks = _Recording(upstream={})
    prepared = lifecycle.prepare(request, execute=False)
    assert prepared.notebook is None and prepared.effective == {"x": 5}
    with pytest.raises(dataclasses.FrozenInstanceError):
        prepared.run_date = "2020-01-01"  # type: ignore[misc]
    located = lifecycle.locate(prepared, hooks)
    assert located.prepared is prepared and located.cache_key == "k" * 64
    assert probe_reuse(request, hooks) is None
    assert hooks.given == ["upstream s", "key []", "upstream s", "key []", "lookup kkk"]
    forced = dataclasses.replace(prepared, request=dataclasses.replace(request, force=True))
    assert lifecycle.reusable(dataclasses.replace(located, prepared=forced), hooks) is None
    assert len(hooks.given) == 5  # a forced attempt never looks


@pytest.mark.unit
def test_without_slots_nothing_is_reused_and_the_run_s_ancestors_are_read(project: Project) -> None:
    project.write_spec({"name": "bare", "stages": {"s": {"notebook": project.add_notebook("s", FAILS[:2])}}})
    located = lifecycle.locate(
        lifecycle.prepare(StageRequest(project.pipeline, "s", "r1"), execute=False), AttemptHooks()
    )
    assert (dict(located.inputs), located.consumed, located.cache_key) == ({}, (), None)
    assert lifecycle.reusable(located, AttemptHooks()) is None
