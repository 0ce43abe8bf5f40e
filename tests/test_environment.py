"""The recorded Python environment: the interpreter and a digest of what is installed."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from nbops import environment

pytestmark = pytest.mark.unit


def test_current_names_this_interpreter_and_hashes_its_packages() -> None:
    env = environment.current()
    assert env.description == f"python {'.'.join(map(str, sys.version_info[:3]))} at {sys.prefix}"
    names = {line.split("==")[0] for line in env.packages}
    assert {"mlflow", "papermill", "pydantic"} <= names
    assert list(env.packages) == sorted(set(env.packages))
    assert env.packages_sha256 == hashlib.sha256("\n".join(env.packages).encode()).hexdigest()


def test_packages_are_read_from_dist_info_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("Foo_Bar-1.2.3.dist-info", "baz-0.1.egg-info", "not-a-package", "qux-2.0.dist-info"):
        (tmp_path / name).mkdir()
    monkeypatch.setattr(sys, "path", [str(tmp_path), str(tmp_path / "missing")])
    assert environment.installed_packages() == ("baz==0.1", "foo-bar==1.2.3", "qux==2.0")
    (tmp_path / "qux-2.1.dist-info").mkdir()
    assert environment.installed_packages() != ("baz==0.1", "foo-bar==1.2.3", "qux==2.0")


def test_overridden_sets_values_and_restores_the_environment_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbops.environment import overridden

    monkeypatch.setenv("NBOPS_T_KEPT", "before")
    monkeypatch.delenv("NBOPS_T_NEW", raising=False)
    with pytest.raises(RuntimeError), overridden({"NBOPS_T_KEPT": "during", "NBOPS_T_NEW": "x"}):
        assert os.environ["NBOPS_T_KEPT"] == "during" and os.environ["NBOPS_T_NEW"] == "x"
        raise RuntimeError("left early")
    assert os.environ["NBOPS_T_KEPT"] == "before" and "NBOPS_T_NEW" not in os.environ
