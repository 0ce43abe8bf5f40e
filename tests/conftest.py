"""Shared fixtures: isolated environments and small pipelines built on the fly."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

FILES = Path(__file__).parent / "files"
ROOT = Path(__file__).parent.parent


def notebook(cells: list[tuple[str, list[str]]]) -> nbformat.NotebookNode:
    """A Python notebook from (source, tags) pairs."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for source, tags in cells:
        cell = nbformat.v4.new_code_cell(source)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    return nb


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's MLflow store or artifact root."""
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "NBOPS_ARTIFACT_ROOT", "NBOPS_RUN_ID", "NBOPS_OUTPUT_DIR"):
        monkeypatch.delenv(var, raising=False)


class Project:
    """A throw-away pipeline directory with its own store and artifact root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "nb").mkdir(parents=True, exist_ok=True)

    @property
    def pipeline(self) -> Path:
        return self.root / "pipeline.yaml"

    def add_notebook(self, name: str, cells: list[tuple[str, list[str]]] | None = None, copy: str | None = None) -> str:
        path = self.root / "nb" / f"{name}.ipynb"
        if copy is not None:
            path.write_bytes((FILES / copy).read_bytes())
        else:
            nbformat.write(notebook(cells or []), path)
        return f"nb/{name}.ipynb"

    def write_spec(self, spec: dict[str, Any], name: str = "pipeline.yaml") -> Path:
        """Write ``spec`` as the spec file ``name`` (``pipeline.yaml``)."""
        path = self.root / name
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    def nbops(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the real ``nbops`` command line in this project."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}
        return subprocess.run(
            [sys.executable, "-m", "nbops", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )

    def popen(self, *args: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[str]:
        """Start the real ``nbops`` command line in this project without waiting for it."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(
            [sys.executable, "-m", "nbops", *args], cwd=self.root, env={**base, **(env or {})}, text=True, **kwargs
        )

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / '.nbops' / 'mlflow.db'}"

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(self.tracking_uri)

    def runs(self, pipeline: str) -> list[Any]:
        client = self.client()
        exp = client.get_experiment_by_name(pipeline)
        return [] if exp is None else client.search_runs([exp.experiment_id], max_results=1000)

    def attempts(self, pipeline: str, stage: str) -> list[Path]:
        return sorted((self.root / ".nbops" / "artifacts" / "runs" / pipeline).glob(f"*/{stage}/attempt-*"))


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    yield Project(tmp_path / "proj")


def example_project(root: Path) -> Project:
    """A copy of the repository's example pipeline (spec and notebooks) in ``root``."""
    shutil.copy(ROOT / "pipeline.yaml", root / "pipeline.yaml")
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    return Project(root)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (yet)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def alive(procs: list[Any]) -> list[Any]:
    """The psutil processes of ``procs`` that still run (zombies and vanished ones left out)."""
    import psutil

    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.NoSuchProcess:
            pass
    return out


def listens(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False
