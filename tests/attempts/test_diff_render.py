"""The text, JSON and HTML of a hand-built diff: what each shows, and that the page escapes
everything it is given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbops.attempts.diff import RunDiff, UnitDiff
from nbops.attempts.diff_html import write
from nbops.attempts.diff_read import Side
from nbops.attempts.diff_sections import CellChange, Line, MetricChange, Param, ParameterChange, Section
from nbops.errors import InputError

pytestmark = pytest.mark.unit

EVIL = "<script>alert(1)</script>"


def side(run: str, status: str = "succeeded", ran: str | None = None) -> Side:
    return Side(run=run, attempt=1, status=status, ran_run=ran or run, ran_attempt=1, location=f"/s/{run}")


def result() -> RunDiff:
    cell = CellChange("changed", 2, 2, "code", (), (Line("-", EVIL), Line("+", "ok")))
    fit = UnitDiff(
        "fit",
        side("r1"),
        side("r2", "cached", ran="r0"),
        (
            Section("parameters", (ParameterChange("q", Param(EVIL, "run"), Param("x", "spec")),)),
            Section("metrics", (MetricChange("acc", 0.5, 0.75),)),
            Section("outputs", cells=(cell,), note="executed notebooks"),
            Section("files"),
        ),
    )
    gone = UnitDiff("report", side("r1"), None)
    same = UnitDiff("prep", side("r1"), side("r2"), (Section("parameters"), Section("commit")))
    return RunDiff("p", "/store", "r1", "r2", (same, fit, gone))


def test_text_shows_differences_and_the_same_list() -> None:
    text = result().to_text()
    assert "run r1 (A) against r2 (B): 2 of 3 stage(s) differ" in text
    assert "stage prep: same" in text and "  same: parameters, commit" in text
    assert "(A attempt 1 succeeded; B attempt 1 cached, reuses attempt 1 of run r0)" in text
    assert f'    q: "{EVIL}" (run) -> "x" (spec)' in text
    assert "    acc: 0.5 -> 0.75  (+0.25, +50.0%)" in text
    assert "  outputs  (executed notebooks)\n    cell 2 (code) changed\n" in text
    assert "stage report: differs  (A attempt 1 succeeded; B did not start)" in text
    assert result().exit_code == 1


def test_json_document() -> None:
    doc = json.loads(result().to_json())
    assert doc["schema"] == "nbops.diff/1" and doc["same"] is False
    prep, fit, report = doc["units"]
    assert prep["same"] is True and report["b"] is None and report["sections"] == {}
    assert fit["b"]["cached"] is True and fit["b"]["ran_run"] == "r0"
    assert fit["sections"]["metrics"]["changes"] == [
        {"name": "acc", "a": 0.5, "b": 0.75, "delta": 0.25, "relative": 0.5}
    ]
    assert fit["sections"]["files"] == {"same": True, "note": "", "changes": [], "cells": []}


def test_the_page_escapes_every_value() -> None:
    page = result().to_html()
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';' in page
    assert '<p class="sames">Same: files</p>' in page


def test_the_page_replaces_only_its_own_file(tmp_path: Path) -> None:
    page = tmp_path / "d.html"
    write(page, result().to_html())
    write(page, RunDiff("p", "/s", "a", "a", ()).to_html())
    assert "Nothing differs" in page.read_text()
    mine = tmp_path / "mine.html"
    mine.write_text("mine")
    with pytest.raises(InputError, match="not a page nbops diff wrote"):
        write(mine, "x")
    with pytest.raises(InputError, match="is not a regular file"):
        write(tmp_path, "x")
    assert mine.read_text() == "mine"
