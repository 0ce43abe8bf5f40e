from __future__ import annotations

import re
from pathlib import Path

import pytest

from nbops.errors import InputError
from nbops.spec import check_pipeline, load_pipeline

pytestmark = pytest.mark.unit

GOOD = """\
name: churn
schedule: "0 2 * * *"
defaults:
  retries: 2
  timeout: 600
  resources: {cpu: "1", memory: 2Gi}
stages:
  prepare:
    notebook: nb/prepare.ipynb
  train:
    notebook: nb/train.ipynb
    needs: [prepare]
    parameters: {n_estimators: 200}
    resources: {cpu: 2, gpu: 1}
    node_selector: {pool: gpu}
    tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
    secrets: [warehouse-credentials]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    return path


def test_defaults_are_merged_into_stages(tmp_path: Path) -> None:
    pipeline = load_pipeline(write(tmp_path, GOOD))
    train = pipeline.stage("train")
    assert train.retries == 2 and train.timeout == 600 and train.cell_timeout == 600
    assert train.resources.cpu == "2" and train.resources.memory == "2Gi" and train.resources.gpu == 1
    assert train.tolerations[0].operator == "Exists"
    assert train.secrets == ("warehouse-credentials",)
    assert pipeline.stage("prepare").image == "nbops-runner:0.1"
    assert len(pipeline.sha256) == 64


def test_every_problem_reported_once_with_field_path_and_line(tmp_path: Path) -> None:
    text = (
        GOOD.replace("retries: 2", "retires: 2")
        .replace("memory: 2Gi}", "memory: lots}")
        .replace("notebook: nb/train.ipynb", "notebook: nb/train.py")
    )
    with pytest.raises(InputError) as info:
        load_pipeline(write(tmp_path, text))
    message, file = str(info.value), tmp_path / "pipeline.yaml"
    assert str(file) in message
    assert f"{file}:4: defaults.retires: unknown key" in message
    assert f"{file}:6: defaults.resources.memory" in message
    assert f"{file}:11: stages.train.notebook" in message and "not a .ipynb file" in message
    assert "3 problem(s)" in message


def test_cycle_is_named_in_order(tmp_path: Path) -> None:
    text = GOOD.replace("    notebook: nb/prepare.ipynb\n", "    notebook: nb/prepare.ipynb\n    needs: [train]\n")
    with pytest.raises(InputError, match=r"dependency cycle (train -> prepare -> train|prepare -> train -> prepare)"):
        load_pipeline(write(tmp_path, text))


def test_unknown_need_and_bad_stage_name(tmp_path: Path) -> None:
    text = GOOD.replace("needs: [prepare]", "needs: [prep]").replace("  prepare:\n", "  pre-pare:\n")
    with pytest.raises(InputError) as info:
        load_pipeline(write(tmp_path, text))
    assert "stages.train.needs: unknown stage 'prep'" in str(info.value)
    assert "stages.pre-pare: a stage name must be an identifier" in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name: [unclosed", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("name: Bad Name\nstages: {a: {notebook: a.ipynb}}", r"pipeline\.yaml:1: name: 'Bad Name' is not a valid"),
        ("name: ok\nschedule: every day\nstages: {a: {notebook: a.ipynb}}", "neither a 5-field cron"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        load_pipeline(write(tmp_path, text))


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="pipeline file not found"):
        load_pipeline(tmp_path / "nope.yaml")


def test_unknown_stage_lookup(tmp_path: Path) -> None:
    pipeline = load_pipeline(write(tmp_path, GOOD))
    with pytest.raises(InputError, match="there is no stage 'evaluate'"):
        pipeline.stage("evaluate")


def test_pattern_errors_are_sentences_naming_field_value_and_what_is_allowed(tmp_path: Path) -> None:
    text = GOOD.replace("name: churn", "name: Churn_Model!").replace("memory: 2Gi}", "memory: lots}")
    text += "kubernetes: {namespace: Team_A}\n"
    with pytest.raises(InputError) as info:
        load_pipeline(write(tmp_path, text))
    message = str(info.value)
    assert (
        "pipeline.yaml:1: name: 'Churn_Model!' is not a valid pipeline name: use 1 to 63 lowercase letters, digits, '-' and '_'"
        in message
    )
    assert "pipeline.yaml:6: defaults.resources.memory: 'lots' is not a Kubernetes quantity: write a number" in message
    assert "kubernetes.namespace" in message and "'Team_A' is not a valid Kubernetes namespace" in message
    assert "should match pattern" not in message and "^[a-z0-9]" not in message


def test_unknown_need_suggests_the_nearest_stage(tmp_path: Path) -> None:
    text = GOOD.replace("needs: [prepare]", "needs: [prepar]")
    with pytest.raises(InputError) as info:
        load_pipeline(write(tmp_path, text))
    assert "stages.train.needs: unknown stage 'prepar'; did you mean 'prepare'?" in str(info.value)
    pipeline = load_pipeline(write(tmp_path, GOOD))
    with pytest.raises(InputError, match=r"there is no stage 'trian' .*; did you mean 'train'\?"):
        pipeline.stage("trian")


def test_check_pipeline_reports_every_problem_and_keeps_the_valid_stages(tmp_path: Path) -> None:
    text = (
        GOOD.replace("name: churn", "name: Churn")
        .replace("needs: [prepare]", "needs: [prepare, evaluat]\n    retries: -1")
        .replace("secrets: [warehouse-credentials]", "secrets: [warehouse-credentials]\n  evaluate: {notebook: e.txt}")
    )
    pipeline, problems = check_pipeline(write(tmp_path, text))
    file = str(tmp_path / "pipeline.yaml")
    assert all(re.match(rf"{re.escape(file)}:\d+: ", p) for p in problems), problems
    text = "\n".join(problems)
    assert "'Churn' is not a valid pipeline name" in text
    assert "stages.train.retries" in text and "stages.evaluate.notebook" in text
    assert "stages.train.needs: unknown stage 'evaluat'; did you mean 'evaluate'?" in text
    assert len(problems) == 4
    assert pipeline is not None
    assert list(pipeline.spec.stages) == ["prepare", "train"]  # evaluate's notebook is invalid
    assert pipeline.stage("train").retries == 2  # the bad key left out, the default inherited


def test_check_pipeline_of_a_valid_file_agrees_with_load_pipeline(tmp_path: Path) -> None:
    pipeline, problems = check_pipeline(write(tmp_path, GOOD))
    assert problems == []
    assert pipeline == load_pipeline(tmp_path / "pipeline.yaml")
    assert check_pipeline(write(tmp_path, "name: [unclosed"))[0] is None


def test_files_globs_stay_inside_the_project_and_default_to_the_notebooks_python(tmp_path: Path) -> None:
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "a.ipynb").write_text("{}")
    spec = tmp_path / "pipeline.yaml"
    spec.write_text("name: p\nfiles: [data/*.csv]\nstages:\n  a: {notebook: nb/a.ipynb, files: [conf/x.yaml]}\n")
    assert load_pipeline(spec).spec.resolved("a").files == ("nb/*.py", "data/*.csv", "conf/x.yaml")
    for bad in ("../secrets/*", "/etc/passwd"):
        spec.write_text(f"name: p\nstages:\n  a: {{notebook: nb/a.ipynb, files: ['{bad}']}}\n")
        with pytest.raises(InputError, match="must be a glob relative to the pipeline file's directory"):
            load_pipeline(spec)


TYPOS = """\
name: churn
shedule: "@daily"
stages:
  prepare:
    notebook: nb/prepare.ipynb
  train:
    notebook: nb/train.ipynb
    need: [prepare]
    colour: blue
  evaluate:
    notebook: nb/evaluate.ipynb
    needs:
      - train
      - prepar
"""


def test_every_problem_is_file_line_field_message_and_nearest_name_in_file_order(tmp_path: Path) -> None:
    """Validation and graph problems in one error, one format, ordered by line; an unknown key
    names the nearest key or, when none is near, every allowed one."""
    with pytest.raises(InputError) as info:
        load_pipeline(write(tmp_path, TYPOS))
    file = tmp_path / "pipeline.yaml"
    header, *problems = str(info.value).splitlines()
    assert header == f"{file}: 4 problem(s) in the pipeline spec:"
    assert problems[:2] == [
        f"  - {file}:2: shedule: unknown key; did you mean 'schedule'?",
        f"  - {file}:8: stages.train.need: unknown key; did you mean 'needs'?",
    ]
    assert problems[2].startswith(f"  - {file}:9: stages.train.colour: unknown key (allowed: image, retries, ")
    assert (
        "notebook, needs, parameters, test_parameters, files, grid, foreach, foreach_from, max_parallel)" in problems[2]
    )
    assert problems[3] == f"  - {file}:14: stages.evaluate.needs: unknown stage 'prepar'; did you mean 'prepare'?"
    assert check_pipeline(file)[1] == [p.removeprefix("  - ") for p in problems]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"name: x\nstages:\n  a: {notebook: nb/a.ipynb\n", ":4: not valid YAML: expected ',' or '}'"),
        (b"name: x\nstages: [\n", ":3: not valid YAML: expected the node content"),
        (b"name: x\n  bad: indent\n", ":2: not valid YAML: mapping values are not allowed here"),
        (b"name: x\nstages:\n\xff\xfe junk", ":3: not valid YAML: byte 0xff is not UTF-8 text."),
        (b"name: x\nas_of: 2026-13-45\nstages: {}\n", ":2: not valid YAML: month must be in 1..12"),
        (b"- a\n- b\n", ":1: expected a mapping with 'name' and 'stages' at the top level."),
    ],
)
def test_a_file_that_is_not_a_spec_is_named_with_its_line(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        load_pipeline(path)
    assert str(info.value).startswith(f"{path}{expected}"), str(info.value)
    assert "<unicode string>" not in str(info.value) and "\n" not in str(info.value)
    assert check_pipeline(path) == (None, [str(info.value)])


def test_a_cycle_points_at_a_need_that_closes_it(tmp_path: Path) -> None:
    text = GOOD.replace("    notebook: nb/prepare.ipynb\n", "    notebook: nb/prepare.ipynb\n    needs: [train]\n")
    with pytest.raises(InputError) as info:
        load_pipeline(write(tmp_path, text))
    found = re.search(r"pipeline\.yaml:(\d+): stages\.(\w+)\.needs: dependency cycle", str(info.value))
    assert found is not None, str(info.value)
    line, stage = int(found.group(1)), found.group(2)
    lines = text.splitlines()
    assert lines[line - 1].strip().startswith("needs: [")
    assert [ln for ln in lines[:line] if re.fullmatch(r"  \w+:", ln)][-1] == f"  {stage}:"  # in that stage's entry


def test_a_directory_nbops_debug_made_never_travels_with_a_stage(tmp_path: Path) -> None:
    from nbops.context import PIN_FILE
    from nbops.spec.pipeline import REOPENED_PIN

    assert REOPENED_PIN == PIN_FILE
    spec = tmp_path / "pipeline.yaml"
    spec.write_text("name: p\nfiles: ['**/*.py']\nstages:\n  a: {notebook: nb/a.ipynb}\n")
    for rel in ("nb/helper.py", "lib/util.py", "debug/a-r1-attempt-1/nb/helper.py", "debug/a-r1-attempt-1/x.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    (tmp_path / "debug" / "a-r1-attempt-1" / PIN_FILE).write_text("{}")
    assert load_pipeline(spec).stage_files("a") == ["lib/util.py", "nb/helper.py"]
