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


def test_the_model_server_serves_the_champion_registered_in_the_in_cluster_mlflow() -> None:
    deploy = ROOT / "deploy" / "k8s"
    docs = {d["kind"]: d for d in yaml.safe_load_all((deploy / "serve.yaml").read_text())}
    deployment, service = docs["Deployment"], docs["Service"]
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    args = container["args"]
    # The pipeline's registered model at the alias the retraining gate moves.
    model = yaml.safe_load((ROOT / "pipeline.yaml").read_text())["retrain"]["model"]
    assert container["command"] == ["mlflow"] and args[:2] == ["models", "serve"], args
    assert args[args.index("-m") + 1] == f"models:/{model}@champion", args
    assert args[args.index("--env-manager") + 1] == "local", args
    assert args[args.index("-h") + 1] == "0.0.0.0", args  # noqa: S104 - the Service reaches the pod there

    # The Service selects the Deployment's pods, in its namespace, and targets the port the server listens on.
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["metadata"]["namespace"] == deployment["metadata"]["namespace"] == "nbops"
    (port,) = container["ports"]
    assert int(args[args.index("-p") + 1]) == port["containerPort"]
    assert service["spec"]["ports"][0]["targetPort"] in (port["name"], port["containerPort"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/ping", "port": port["name"]}, probe

    # The model is downloaded to /tmp: writable although the root filesystem is read-only.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    tmp = next(m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    assert any(v["name"] == tmp and "emptyDir" in v for v in pod["spec"]["volumes"])

    # The registry is the MLflow Service of mlflow.yaml, at a host that server accepts.
    mlflow = {d["kind"]: d for d in yaml.safe_load_all((deploy / "mlflow.yaml").read_text())}
    meta, (mlflow_port,) = mlflow["Service"]["metadata"], mlflow["Service"]["spec"]["ports"]
    host = f"{meta['name']}.{meta['namespace']}.svc.cluster.local:{mlflow_port['port']}"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MLFLOW_TRACKING_URI"] == f"http://{host}"
    server_args = mlflow["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    allowed = next(a for a in server_args if a.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    assert host in allowed, allowed
