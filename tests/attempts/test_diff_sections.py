"""The sections' rules over hand-built records: what counts as a difference and what does not."""

from __future__ import annotations

import math

import pytest

from nbops.attempts.diff_sections import (
    InputChange,
    MetricChange,
    Param,
    ParameterChange,
    Upstream,
    ValueChange,
    inputs,
    metrics,
    package_versions,
    parameters,
    values,
)

pytestmark = pytest.mark.unit

SHA_A, SHA_B, DATA = "a" * 64, "b" * 64, "d" * 64


def test_parameters_differ_by_value_by_origin_and_by_presence() -> None:
    a = {"n": Param(3, "notebook"), "k": Param(4, "spec"), "lr": Param(0.1, "run"), "old": Param(1, "spec")}
    b = {"n": Param(5, "run"), "k": Param(4, "run"), "lr": Param(0.1, "run"), "new": Param("x", "point")}
    section = parameters(a, b)
    assert not section.same
    assert section.changes == (
        ParameterChange("n", Param(3, "notebook"), Param(5, "run")),
        ParameterChange("k", Param(4, "spec"), Param(4, "run")),
        ParameterChange("old", Param(1, "spec"), None),
        ParameterChange("new", None, Param("x", "point")),
    )
    assert parameters(a, dict(a)).same


def test_metrics_carry_their_deltas() -> None:
    section = metrics({"acc": 0.8, "loss": 2.0, "gone": 1.0, "zero": 0.0}, {"acc": 0.9, "loss": 2.0, "zero": 3.0})
    acc, gone, zero = section.changes
    assert isinstance(acc, MetricChange) and acc.name == "acc"
    assert acc.delta == pytest.approx(0.1) and acc.relative == pytest.approx(0.125)
    assert gone == MetricChange("gone", 1.0, None) and gone.delta is None and gone.relative is None
    assert zero.delta == 3.0 and zero.relative is None  # no relative change from zero
    assert MetricChange("m", -2.0, -1.0).relative == pytest.approx(0.5)  # relative to |a|


def test_nan_metrics_are_the_same() -> None:
    assert metrics({"m": math.nan}, {"m": math.nan}).same
    assert not metrics({"m": math.nan}, {"m": 1.0}).same


def test_inputs_differ_only_when_the_data_differs() -> None:
    one = Upstream(run="r1", attempt=1, manifest_sha256=SHA_A, data_sha256=DATA)
    same_data = Upstream(run="r2", attempt=1, manifest_sha256=SHA_B, data_sha256=DATA)
    other_data = Upstream(run="r2", attempt=1, manifest_sha256=SHA_B, data_sha256="e" * 64)
    unreadable = Upstream(run="r2", attempt=1, manifest_sha256=SHA_B, data_sha256=None)
    assert inputs({"prep": one}, {"prep": one}).same
    assert inputs({"prep": one}, {"prep": same_data}).same  # another attempt that wrote the same files
    assert inputs({"prep": one}, {"prep": other_data}).changes == (InputChange("prep", one, other_data),)
    assert not inputs({"prep": one}, {"prep": unreadable}).same  # unknown data: the attempts differ
    assert inputs({"prep": one}, {}).changes == (InputChange("prep", one, None),)


def test_values_and_packages() -> None:
    a = package_versions(["numpy==2.1.0", "pandas==2.2.3", "odd-line"])
    b = package_versions(["numpy==2.2.0", "pandas==2.2.3", "scipy==1.14.0"])
    assert a == {"numpy": "2.1.0", "pandas": "2.2.3", "odd-line": ""}
    assert values("environment", a, b).changes == (
        ValueChange("numpy", "2.1.0", "2.2.0"),
        ValueChange("odd-line", "", None),
        ValueChange("scipy", None, "1.14.0"),
    )
    assert values("commit", {"git_commit": "c1", "git_dirty": False}, {"git_commit": "c1", "git_dirty": False}).same
