"""The manifests of deploy/k8s validate strictly against the Kubernetes schema, and the MLflow
server they run proxies artifacts where the stage pods' tracking URI points."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from tests.airflow.test_pod import K8S_VERSION
from tests.conftest import ROOT

pytestmark = pytest.mark.unit
MANIFESTS = sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_every_manifest_validates_strictly(path: object) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]  # type: ignore[attr-defined]
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_mlflow_server_proxies_artifacts_at_the_uri_the_stages_use() -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "mlflow.yaml").read_text())}
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert any(a.startswith("--artifacts-destination=") for a in container["args"])
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    service = docs["Service"]["metadata"]
    values = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
    uri = next(e["value"] for e in values["env"] if e["name"] == "MLFLOW_TRACKING_URI")
    assert uri == f"http://{service['name']}.{service['namespace']}.svc.cluster.local:5000"
