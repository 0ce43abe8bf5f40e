"""The stage result travels as JSON from the stage command to the runner; the request travels as the
stage command line, written and read by one codec."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from nbops.errors import InputError
from nbops.stage.result import StageArgvError, StageRequest, StageResult, stage_argv
from nbops.status import StageStatus

pytestmark = pytest.mark.unit


def test_result_round_trips_and_carries_its_exit_code() -> None:
    result = StageResult(
        stage="s",
        run_id="r",
        status=StageStatus.KERNEL_DIED,
        attempt=2,
        mlflow_run_id="abc",
        failed_cell=3,
        phases={"prepare": 0.2, "run": 1.5},
    )
    text = result.to_json()
    assert json.loads(text)["exit_code"] == 3
    assert json.loads(text)["status"] == "kernel_died"
    assert StageResult.from_json(text) == result


@pytest.mark.parametrize("text", ["[]", '{"stage": "s", "run_id": "r", "status": "exploded"}', "{nope"])
def test_foreign_results_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        StageResult.from_json(text)


# -- the stage command line ---------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
_WHERE = st.one_of(
    st.builds(lambda p: (Path(p), None), st.text(min_size=1).filter(lambda t: "\x00" not in t)),
    st.builds(lambda s: (None, s), st.text()),
)


@st.composite
def _requests(draw: st.DrawFn) -> StageRequest:
    pipeline_file, promoted = draw(_WHERE)
    return StageRequest(
        pipeline_file=pipeline_file,
        stage=draw(st.text()),
        run_id=draw(st.text()),
        params=draw(st.dictionaries(st.text(), _JSON, max_size=4)),
        promoted=promoted,
        force=draw(st.booleans()),
        point=draw(st.none() | st.integers(min_value=0, max_value=10_000)),
    )


@settings(max_examples=300, deadline=None)
@example(
    request=StageRequest(Path("--force"), "--force", "--stage=x", {"--run-id": "="}, force=True), result_file="--force"
)
@example(request=StageRequest(None, "", "", {}, promoted="--pipeline"), result_file=None)
@given(request=_requests(), result_file=st.none() | st.text(min_size=1).filter(lambda t: "\x00" not in t))
def test_a_request_round_trips_through_its_command_line(request: StageRequest, result_file: str | None) -> None:
    """Any stage, run id, parameters and path, even ones spelled like options (``--force``); and
    ``exec-stage``'s own parser reads the same request from it."""
    from nbops.cli import exec_stage_cmd

    argv = request.to_argv(result_file)
    assert argv[0] == "exec-stage" and all(isinstance(a, str) for a in argv)
    assert StageRequest.from_argv(argv) == request
    parsed = exec_stage_cmd.make_context("exec-stage", argv[1:]).params
    assert (parsed["pipeline_file"], parsed["promoted"]) == (request.pipeline_file, request.promoted)
    assert (parsed["stage"], parsed["run_id"], parsed["force"]) == (request.stage, request.run_id, request.force)
    assert json.loads(parsed["params_json"]) == request.params and parsed["point"] == request.point
    assert parsed["result_file"] == (Path(result_file) if result_file is not None else None)


def test_the_command_line_is_what_exec_stage_declares() -> None:
    """Every option of ``exec-stage`` is written, and click reads the request back unchanged."""
    from nbops.cli import exec_stage_cmd

    local = StageRequest(Path("p.yaml"), "fit", "r1", {"C": 0.5, "tags": ["a"]}, force=True, point=3)
    promoted = StageRequest(None, "fit", "{{ run_id }}", {}, promoted="ab" * 32)
    argvs = [local.to_argv(Path("out.json")), promoted.to_argv()]
    declared = {opt for param in exec_stage_cmd.params for opt in param.opts}
    assert {a for argv in argvs for a in argv if a.startswith("--")} == declared
    for request, argv in zip([local, promoted], argvs, strict=True):
        parsed = exec_stage_cmd.make_context("exec-stage", argv[1:]).params
        assert parsed["pipeline_file"] == request.pipeline_file and parsed["promoted"] == request.promoted
        assert (parsed["stage"], parsed["run_id"], parsed["force"]) == (request.stage, request.run_id, request.force)
        assert json.loads(parsed["params_json"]) == request.params and parsed["point"] == request.point
    assert exec_stage_cmd.make_context("exec-stage", argvs[0][1:]).params["result_file"] == Path("out.json")


def test_the_command_line_s_order_is_the_runner_s_and_the_pod_s() -> None:
    request = StageRequest(Path("/p/pipeline.yaml"), "fit", "r1", {"C": 1}, run_date="2026-01-02", force=True)
    assert request.to_argv("/logs/fit-1.result.json") == [
        "exec-stage",
        "--pipeline", "/p/pipeline.yaml", "--stage", "fit", "--run-id", "r1", "--params-json", '{"C": 1}',
        "--result-file", "/logs/fit-1.result.json", "--force",
    ]  # fmt: skip
    # The run date travels in NBOPS_RUN_DATE, not on the command line.
    assert StageRequest.from_argv(request.to_argv()) == replace(request, run_date=None)
    assert stage_argv(promoted="sha", stage="s", run_id="{{ run_id }}", params_json="{{ x | tojson }}") == [
        "exec-stage", "--promoted", "sha", "--stage", "s", "--run-id", "{{ run_id }}", "--params-json", "{{ x | tojson }}",
    ]  # fmt: skip


def test_option_equals_value_spellings_are_read_as_click_reads_them() -> None:
    argv = ["exec-stage", "--promoted=sha", "--stage=s", "--run-id", "r", "--params-json={}", "--result-file=x"]
    assert StageRequest.from_argv(argv) == StageRequest(None, "s", "r", {}, promoted="sha")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "not a stage command line"),
        (["close-run", "--promoted", "sha", "--run-id", "r"], "not a stage command line"),
        (["exec-stage", "--promoted", "sha", "--stage", "s"], "missing --run-id"),
        (["exec-stage", "--stage", "s", "--run-id", "r"], "exactly one of --pipeline and --promoted"),
        (["exec-stage", "--pipeline", "p", "--promoted", "x", "--stage", "s", "--run-id", "r"], "exactly one"),
        (["exec-stage", "--promoted", "sha", "--stage", "s", "--run-id", "r", "--jobs", "2"], "unexpected argument"),
        (["exec-stage", "--promoted", "sha", "--stage", "s", "--run-id", "r", "extra"], "unexpected argument"),
        (["exec-stage", "--promoted", "sha", "--stage", "s", "--stage", "t", "--run-id", "r"], "given twice"),
        (["exec-stage", "--promoted", "sha", "--stage", "s", "--run-id"], "--run-id needs a value"),
        (["exec-stage", "--promoted", "sha", "--stage", "s", "--run-id", "r", "--force=yes"], "takes no value"),
        (["exec-stage", "--promoted", "sha", "--stage", "s", "--run-id", "r", "--params-json", "{"], "not valid JSON"),
        (["exec-stage", "--promoted", "sha", "--stage", "s", "--run-id", "r", "--params-json", "[]"], "JSON object"),
    ],
)
def test_other_command_lines_are_refused(argv: list[str], says: str) -> None:
    with pytest.raises(StageArgvError, match=re.escape(says)) as caught:
        StageRequest.from_argv(argv)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, InputError)


def test_a_request_the_command_would_refuse_has_no_command_line() -> None:
    with pytest.raises(StageArgvError, match="exactly one"):
        StageRequest(None, "s", "r").to_argv()
    with pytest.raises(StageArgvError, match="not expressible as JSON"):
        StageRequest(None, "s", "r", {"when": object()}, promoted="sha").to_argv()
