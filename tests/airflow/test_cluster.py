"""Opt-in: the promoted example against a real cluster (skipped unless KUBECONFIG is set).

Prerequisites are those of deploy/README.md: the runner image loaded in the cluster, the
manifests of deploy/k8s applied, the promoted notebooks and lock copied into the
``nbops-artifacts`` claim, and MLFLOW_TRACKING_URI naming a server the pods can reach.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.airflow.conftest import airflow_env
from tests.conftest import ROOT

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (os.environ.get("KUBECONFIG") and os.environ.get("NBOPS_CLUSTER_MLFLOW_TRACKING_URI")),
        reason="needs a real cluster: set KUBECONFIG and NBOPS_CLUSTER_MLFLOW_TRACKING_URI",
    ),
]


def test_example_dag_runs_on_the_cluster(tmp_path: Path) -> None:
    uri = os.environ["NBOPS_CLUSTER_MLFLOW_TRACKING_URI"]  # the MLflow server the stage pods record to
    airflow = str(Path(sys.executable).with_name("airflow"))
    env = airflow_env(
        ROOT / "dags",
        NBOPS_BACKEND="kubernetes",
        MLFLOW_TRACKING_URI=uri,
        KUBECONFIG=os.environ["KUBECONFIG"],
        AIRFLOW_HOME=str(tmp_path / "airflow-home"),
    )
    for args in (["db", "migrate"], ["dags", "test", "diagnosis", "-c", json.dumps({"optimize.n_iter": 2})]):
        result = subprocess.run(
            [airflow, *args], env=env, capture_output=True, text=True, timeout=3600, check=False, cwd=tmp_path
        )
        assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    assert "state=success" in result.stdout + result.stderr
