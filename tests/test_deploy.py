"""The manifests of deploy/k8s validate strictly against the Kubernetes schema; the MLflow server
they run proxies artifacts where the stage pods' tracking URI points and requires accounts, with
no password written in them; the model server serves only what its init container verified."""

from __future__ import annotations

import configparser
from typing import Any

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


def _docs(name: str) -> dict[str, Any]:
    return {d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy" / "k8s" / name).read_text()) if d}


def test_the_mlflow_server_requires_accounts_and_no_password_is_written_in_the_manifests() -> None:
    docs = _docs("mlflow.yaml")
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "--app-name=basic-auth" in container["args"], container["args"]
    env = {e["name"]: e for e in container["env"]}
    # The auth settings: the ConfigMap's ini, mounted read-only where MLFLOW_AUTH_CONFIG_PATH points.
    config_map = docs["ConfigMap"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "auth-config")
    volume = next(v for v in pod["volumes"] if v["name"] == "auth-config")
    assert volume["configMap"]["name"] == config_map["metadata"]["name"] and mount["readOnly"] is True
    (key,) = config_map["data"]
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"] == f"{mount['mountPath']}/{key}"
    ini = configparser.ConfigParser()
    ini.read_string(config_map["data"][key])
    assert ini["mlflow"]["default_permission"] == "READ"
    assert "admin_password" not in ini["mlflow"]
    # The auth database lives on the store's claim, beside the tracking database.
    store = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "store")
    assert ini["mlflow"]["database_uri"].startswith(f"sqlite:///{store}/")
    # Passwords and keys come from a Secret the operator creates; no manifest carries one.
    for name in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-admin", name
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            assert not doc or doc["kind"] != "Secret", f"{path.name} writes a Secret: create it with kubectl instead"
    readme = (ROOT / "deploy" / "README.md").read_text()
    assert "kubectl -n mlflow create secret generic mlflow-admin" in readme
    for field in ("admin-password", "flask-secret-key"):
        assert f"--from-literal={field}=" in readme, field


def test_the_model_server_serves_the_champion_it_verified_from_the_in_cluster_mlflow() -> None:
    docs = _docs("serve.yaml")
    deployment, service = docs["Deployment"], docs["Service"]
    pod = deployment["spec"]["template"]
    (verify,) = pod["spec"]["initContainers"]
    (container,) = pod["spec"]["containers"]
    args = container["args"]
    # The init container verifies the pipeline's model at the alias the retraining gate moves and
    # writes it to a volume; the server serves that volume, read-only, and nothing else.
    model = yaml.safe_load((ROOT / "pipeline.yaml").read_text())["retrain"]["model"]
    assert verify["command"] == ["nbops"]
    assert verify["args"] == ["verify-model", f"{model}@champion", "--to", "/model"]
    assert container["command"] == ["mlflow"] and args[:2] == ["models", "serve"], args
    assert args[args.index("-m") + 1] == "/model", args
    assert args[args.index("--env-manager") + 1] == "local", args
    assert args[args.index("-h") + 1] == "0.0.0.0", args  # noqa: S104 - the Service reaches the pod there
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    written = next(m for m in verify["volumeMounts"] if m["mountPath"] == "/model")
    served = next(m for m in container["volumeMounts"] if m["mountPath"] == "/model")
    assert written["name"] == served["name"] and "emptyDir" in volumes[served["name"]]
    assert served.get("readOnly") is True and not written.get("readOnly")

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

    # Both write only to emptyDirs: /tmp (HOME) and /model, the root filesystem read-only.
    for each in (verify, container):
        assert each["securityContext"]["readOnlyRootFilesystem"] is True, each["name"]
        assert each["securityContext"]["allowPrivilegeEscalation"] is False, each["name"]
        assert each["securityContext"]["capabilities"] == {"drop": ["ALL"]}, each["name"]
        tmp = next(m["name"] for m in each["volumeMounts"] if m["mountPath"] == "/tmp")
        assert "emptyDir" in volumes[tmp], each["name"]

    # The registry is the MLflow Service of mlflow.yaml, at a host that server accepts, read with
    # the pipeline's account (the Secret the DAG's pods take); the server itself holds neither.
    mlflow = _docs("mlflow.yaml")
    meta, (mlflow_port,) = mlflow["Service"]["metadata"], mlflow["Service"]["spec"]["ports"]
    host = f"{meta['name']}.{meta['namespace']}.svc.cluster.local:{mlflow_port['port']}"
    env = {e["name"]: e.get("value") for e in verify["env"]}
    assert env["MLFLOW_TRACKING_URI"] == f"http://{host}"
    # The Secret the DAG's pods take (nbops.airflow.pod.MLFLOW_CREDENTIALS_SECRET; tests/airflow/test_pod.py).
    assert verify["envFrom"] == [{"secretRef": {"name": "nbops-mlflow-credentials"}}]
    served_env = {e["name"] for e in container["env"]}
    assert "MLFLOW_TRACKING_URI" not in served_env and "envFrom" not in container, container
    server_args = mlflow["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    allowed = next(a for a in server_args if a.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    assert host in allowed, allowed
