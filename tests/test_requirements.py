"""A model's pip requirements read from the model object: exact (pinned), complete (with what they require)."""

from __future__ import annotations

import importlib.metadata as metadata

import pytest

from nbops.requirements import model_modules, pinned_requirements


def _pins(lines: list[str]) -> dict[str, str]:
    return dict(line.split("==", 1) for line in lines)


def test_a_fitted_estimator_needs_its_library_and_what_that_requires_pinned_to_the_installed_versions() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=3).fit([[0.0], [1.0], [2.0], [3.0]] * 10, [0, 0, 1, 1] * 10)
    assert model_modules(model) == {"sklearn", "numpy"}
    pins = _pins(pinned_requirements(model) or [])
    for name in ("scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl"):  # scikit-learn requires the last three
        assert pins[name] == metadata.version(name)
    # What this process happens to have imported is not the model's: MLflow's inference lists such packages.
    assert "pytest" not in pins and "mlflow" not in pins and "pandas" not in pins


def test_a_flavor_s_own_distributions_are_added_with_theirs() -> None:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0], [1], [2], [3]], [0, 0, 1, 1])
    pins = _pins(pinned_requirements(model, also=["skops"]) or [])
    assert pins["skops"] == metadata.version("skops")
    assert pins["prettytable"] == metadata.version("prettytable")  # skops requires it
    assert list(pins) == sorted(pins)


def test_a_model_that_does_not_pickle_is_left_to_mlflow() -> None:
    unpicklable = {"batches": (i for i in range(3))}  # a generator never pickles

    assert model_modules(unpicklable) is None
    assert pinned_requirements(unpicklable) is None


@pytest.mark.parametrize("value", [1, "text", {"a": [1.5, None]}])
def test_plain_python_values_need_nothing(value: object) -> None:
    assert pinned_requirements(value) == []
