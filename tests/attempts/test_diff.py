"""``nbops diff`` over real runs of a two-stage pipeline: a run with a ``-p`` parameter against a
plain one, a run against itself, a cached re-run followed to the attempt that ran, bad input, and
the JSON and HTML forms."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from nbops.attempts.diff import SECTIONS, RunDiff, UnitDiff, diff_runs
from nbops.attempts.diff_sections import InputChange, MetricChange, Param, ParameterChange, Section
from nbops.errors import InputError
from tests.conftest import Project

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREP = [
    ("n: int = 3", ["parameters"]),
    ("import nbops\n(nbops.output_dir() / 'n.txt').write_text(str(n))\nprint('n is', n)", []),
    ("print('fixed')", []),
    ("rows = n * 2", ["metrics"]),
]
FIT = [
    ("k: int = 2", ["parameters"]),
    ("import nbops\nv = int((nbops.input_dir('prep') / 'n.txt').read_text())\nprint(v * k)", []),
    ("total = v * k", ["metrics"]),
]


@dataclass(frozen=True)
class Runs:
    project: Project
    plain: str
    given: str
    again: str
    """``given`` re-run unchanged: every stage cached."""


def run(project: Project, *args: str) -> str:
    done = project.nbops("run", *args)
    assert done.returncode == 0, done.stderr
    found = re.search(r"^Run (\S+) succeeded", done.stderr, re.MULTILINE)
    assert found is not None, done.stderr
    return found.group(1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    project = Project(tmp_path_factory.mktemp("diff") / "proj")
    project.add_notebook("prep", PREP)
    project.add_notebook("fit", FIT)
    stages = {
        "prep": {"notebook": "nb/prep.ipynb"},
        "fit": {"notebook": "nb/fit.ipynb", "needs": ["prep"], "parameters": {"k": 4}},
    }
    project.write_spec({"name": "dd", "stages": stages})
    plain = run(project)
    given = run(project, "-p", "prep.n=5", "-p", "fit.k=4")
    again = run(project, "-p", "prep.n=5", "-p", "fit.k=4")
    return Runs(project, plain, given, again)


def unit(result: RunDiff, name: str) -> UnitDiff:
    return next(u for u in result.units if u.unit == name)


def section(found: UnitDiff, name: str) -> Section:
    return next(s for s in found.sections if s.name == name)


def test_a_run_parameter_shows_in_parameters_metrics_inputs_and_one_output_cell(runs: Runs) -> None:
    result = diff_runs(runs.project.pipeline, runs.plain, runs.given)
    assert result.exit_code == 1 and [u.unit for u in result.units] == ["prep", "fit"]
    prep, fit = unit(result, "prep"), unit(result, "fit")
    assert [s.name for s in prep.sections] == list(SECTIONS)
    assert section(prep, "parameters").changes == (ParameterChange("n", Param(3, "notebook"), Param(5, "run")),)
    assert section(fit, "parameters").changes == (ParameterChange("k", Param(4, "spec"), Param(4, "run")),)
    assert section(prep, "metrics").changes == (MetricChange("rows", 6.0, 10.0),)
    (total,) = section(fit, "metrics").changes
    assert isinstance(total, MetricChange) and (total.a, total.b, total.delta) == (12.0, 20.0, 8.0)
    (consumed,) = section(fit, "inputs").changes
    assert isinstance(consumed, InputChange) and consumed.unit == "prep"
    assert consumed.a is not None and consumed.b is not None
    assert (consumed.a.run, consumed.b.run) == (runs.plain, runs.given)
    assert consumed.a.data_sha256 != consumed.b.data_sha256
    (cell,) = section(prep, "outputs").cells  # 'fixed' printed the same both times
    assert (cell.kind, cell.a_index) == ("changed", 1)
    assert [(line.op, line.text) for line in cell.outputs] == [("-", "n is 3"), ("+", "n is 5")]
    for name in ("source", "files", "environment", "commit", "status"):
        assert section(prep, name).same and section(fit, name).same, name
    assert section(prep, "inputs").same


def test_the_text_shows_what_differs_and_lists_what_is_the_same(runs: Runs) -> None:
    done = runs.project.nbops("diff", runs.plain, runs.given)
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert f"run {runs.plain} (A) against {runs.given} (B): 2 of 2 stage(s) differ" in out
    assert "    n: 3 (notebook) -> 5 (run)" in out
    assert "    rows: 6 -> 10  (+4, +66.7%)" in out
    assert "      - n is 3\n      + n is 5" in out
    assert "  same: inputs, source, files, environment, commit, status" in out


def test_a_run_against_itself_is_the_same(runs: Runs) -> None:
    done = runs.project.nbops("diff", runs.given, runs.given, "--stage", "fit")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing differs" in done.stdout and "stage prep" not in done.stdout


def test_a_cached_rerun_is_followed_to_the_attempt_that_ran(runs: Runs) -> None:
    result = diff_runs(runs.project.pipeline, runs.given, runs.again)
    assert result.exit_code == 0, result.to_text()
    for found in result.units:
        assert found.b is not None and found.b.cached and found.b.status == "cached"
        assert (found.b.ran_run, found.b.ran_attempt) == (runs.given, 1)
        assert section(found, "outputs").note == "the same attempt ran both"
    # Against the plain run, the cached one compares as the attempt it reused.
    against = diff_runs(runs.project.pipeline, runs.plain, runs.again)
    assert (
        section(unit(against, "prep"), "outputs").cells
        == section(unit(diff_runs(runs.project.pipeline, runs.plain, runs.given), "prep"), "outputs").cells
    )
    assert "reuses attempt 1 of run " + runs.given in against.to_text()


def test_an_unknown_run_is_bad_input_naming_it(runs: Runs) -> None:
    done = runs.project.nbops("diff", runs.plain, "20990101T000000Z-000000")
    assert done.returncode == 2
    assert "run '20990101T000000Z-000000': no such run of pipeline 'dd'" in done.stderr
    assert "(the newest is 20" in done.stderr  # another test may have run the pipeline since
    with pytest.raises(InputError, match="--stage 'nope': not a stage"):
        diff_runs(runs.project.pipeline, runs.plain, runs.given, "nope")


def test_json_has_every_section(runs: Runs) -> None:
    done = runs.project.nbops("diff", runs.plain, runs.given, "--json")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["schema"] == "nbops.diff/1" and doc["same"] is False
    assert (doc["a"], doc["b"]) == (runs.plain, runs.given)
    prep = doc["units"][0]
    assert prep["unit"] == "prep" and list(prep["sections"]) == list(SECTIONS)
    assert prep["sections"]["parameters"]["changes"] == [
        {"name": "n", "a": {"value": 3, "origin": "notebook"}, "b": {"value": 5, "origin": "run"}}
    ]
    assert prep["sections"]["metrics"]["changes"][0]["delta"] == 4.0
    assert prep["sections"]["outputs"]["cells"][0]["outputs"] == [["-", "n is 3"], ["+", "n is 5"]]
    assert prep["b"]["cached"] is False and prep["sections"]["source"]["same"] is True


def test_html_page_has_the_stage_tables_and_no_script(runs: Runs) -> None:
    page = runs.project.root / "diff.html"
    done = runs.project.nbops("diff", runs.plain, runs.given, "--html", str(page))
    assert done.returncode == 1, done.stderr
    assert f"nbops diff: wrote {page}" in done.stderr
    html = page.read_text()
    assert '<section class="stage" id="stage-prep">' in html and '<section class="stage" id="stage-fit">' in html
    assert "<td><code>n</code></td><td><code>3 (notebook)</code></td><td><code>5 (run)</code></td>" in html
    assert '<span class="del">- n is 3</span><span class="add">+ n is 5</span>' in html
    assert "<script" not in html.lower() and "http" not in html.replace('http-equiv="Content-Security-Policy"', "")
    # Its own page is replaced; a file the user has is not.
    again = runs.project.nbops("diff", runs.given, runs.given, "--html", str(page))
    assert again.returncode == 0 and "Nothing differs" in page.read_text()
    mine = runs.project.root / "notes.html"
    mine.write_text("<p>my notes</p>")
    refused = runs.project.nbops("diff", runs.plain, runs.given, "--html", str(mine))
    assert refused.returncode == 2 and "is not a page nbops diff wrote" in refused.stderr
    assert mine.read_text() == "<p>my notes</p>"


def test_an_edited_notebook_shows_its_source_cells(runs: Runs, tmp_path: Path) -> None:
    project = runs.project
    path = project.root / "nb" / "fit.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(2, nbformat.v4.new_markdown_cell("# Fit"))
    nb.cells[1].source += "\nprint('more')"
    nbformat.write(nb, path)
    edited = run(project, "-p", "prep.n=5", "-p", "fit.k=4")
    fit = unit(diff_runs(project.pipeline, runs.given, edited, "fit"), "fit")
    source = section(fit, "source")
    assert source.note == "source notebooks" and source.changes[0].name == "sha256"  # type: ignore[union-attr]
    kinds = {(c.kind, c.cell_type) for c in source.cells}
    assert kinds == {("changed", "code"), ("added", "markdown")}
    (more,) = section(fit, "outputs").cells
    assert [(line.op, line.text) for line in more.outputs][-1] == ("+", "more")
