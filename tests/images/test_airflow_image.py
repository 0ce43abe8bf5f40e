"""The Airflow image's build check imports every module the DAG code imports only when a task or
a callback runs: such an import is lazy so that parsing a DAG stays fast, and a module missing
from the image would fail only there, logged by Airflow and never seen (no alert would leave)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "images" / "airflow" / "Dockerfile"
# The Task SDK is Airflow itself, at the version the base image pins.
AIRFLOW_ITSELF = "airflow.sdk"


def lazy_imports(path: Path) -> set[str]:
    """Modules imported inside a function of ``path`` (not at module level, not for type checking)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and inner.module and inner.level == 0:
                    found.add(inner.module)
                elif isinstance(inner, ast.Import):
                    found.update(alias.name for alias in inner.names)
    return found


def build_check() -> set[str]:
    """The modules the Dockerfile's ``python -c "import ..."`` step imports."""
    [line] = re.findall(r'python -c "import ([^"]+)"', DOCKERFILE.read_text())
    return {name.strip() for name in line.split(",")}


def test_the_build_check_imports_every_lazily_imported_module() -> None:
    lazy = set().union(*(lazy_imports(p) for p in (ROOT / "nbops" / "airflow").glob("*.py")))
    needed = {m for m in lazy if not (m == AIRFLOW_ITSELF or m.startswith(AIRFLOW_ITSELF + "."))}
    assert {"apprise.utils.parse", "airflow.providers.apprise.hooks.apprise", "nbops.alerts"} <= needed
    assert needed - build_check() == set(), "import them in images/airflow/Dockerfile's check"


def test_the_image_installs_apprise_and_its_airflow_provider() -> None:
    install = DOCKERFILE.read_text().split("RUN pip install", 1)[1].split("&&", 1)[0]
    assert re.search(r"\bapprise\b", install) and "apache-airflow-providers-apprise" in install
