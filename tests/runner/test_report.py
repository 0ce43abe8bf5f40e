"""What `nbops run` prints at the end: hints that work as printed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nbops.runner.report import nbops_command

pytestmark = pytest.mark.unit


def test_the_hint_names_nbops_as_the_shell_can_run_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    executable = venv_bin / "nbops"
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(executable), "run"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # `make example`: the venv is not on PATH
    assert nbops_command() == ".venv/bin/nbops"
    monkeypatch.setenv("PATH", f"{venv_bin}:/usr/bin:/bin")  # an activated venv, or a pip install
    assert nbops_command() == "nbops"
    monkeypatch.setattr(sys, "argv", ["-c"])  # called as a library
    assert nbops_command() == "nbops"
