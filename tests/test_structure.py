"""The package's shape, held by tests as the import contracts hold its layers: small modules and
functions, each environment variable and MLflow status spelled once, a map at the door that names
modules that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import nbops

pytestmark = pytest.mark.unit

PACKAGE = Path(nbops.__file__).parent
MODULE_LINES = 400
FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_is_over_400_lines() -> None:
    big = {str(p.relative_to(PACKAGE)): n for p in _modules() if (n := len(p.read_text().splitlines())) > MODULE_LINES}
    assert not big, f"split these by job: {big}"


def test_no_function_is_over_60_lines() -> None:
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.name} ({size})")
    assert not long, f"split these into named steps: {long}"


def test_each_environment_variable_name_is_defined_once() -> None:
    defined: dict[str, list[str]] = {}
    pattern = re.compile(r'^\s*[A-Z_]+ = "((?:NBOPS|MLFLOW)_[A-Z_]+)"', re.MULTILINE)
    for path in _modules():
        for name in pattern.findall(path.read_text()):
            defined.setdefault(name, []).append(str(path.relative_to(PACKAGE)))
    twice = {name: where for name, where in defined.items() if len(where) > 1}
    assert not twice, twice
    assert "NBOPS_APPROVER" in defined  # the scan reads what it should


def test_mlflow_run_statuses_are_spelled_only_in_status_py() -> None:
    spelled = re.compile(r'"(FINISHED|FAILED|KILLED|RUNNING)"')
    found = [
        f"{path.relative_to(PACKAGE)}: {m.group(0)}"
        for path in _modules()
        if path.name != "status.py" and path.relative_to(PACKAGE) != Path("audit/render.py")  # its verdict word
        for m in spelled.finditer(path.read_text())
    ]
    assert not found, found


def test_the_map_at_the_door_names_modules_that_exist() -> None:
    doc = nbops.__doc__ or ""
    named = set(re.findall(r"\b([a-z_]+(?:/[a-z_]+)*(?:\.py|/))", doc))
    assert len(named) > 20
    missing = []
    for name in named:
        direct = PACKAGE / name
        nested = [p for p in PACKAGE.rglob(name.rstrip("/")) if p.exists()]
        if not direct.exists() and not nested:
            missing.append(name)
    assert not missing, missing
