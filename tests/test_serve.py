"""``nbops serve`` answers predictions of the registered champion on 127.0.0.1.

One pipeline store, built once for the module, holds registered model ``m`` with two versions
trained on opposite labels (champion: version 1) and ``broken``, a version whose files are
gone, each sealed as a stage run seals what it registers. The server is the real ``mlflow
models serve`` run by the real command in a subprocess.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import Project, alive, free_port, listens

pytestmark = pytest.mark.integration

SERVE = [sys.executable, "-m", "nbops", "serve"]
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
ADDRESS = re.compile(r"^nbops serve: (?P<what>.+) at (?P<url>http://\S+/invocations) \(Ctrl-C stops it\)$")
STARTUP_S = 120


@dataclass
class Store:
    """The module's pipeline: its directory, the rows to score and each version's predictions."""

    root: Path
    columns: list[str]
    rows: list[list[float]]
    predictions: dict[str, list[int]] = field(default_factory=dict)

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(f"sqlite:///{self.root / '.nbops' / 'mlflow.db'}")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    project = Project(tmp_path_factory.mktemp("serve") / "proj")
    notebook = project.add_notebook("train", [("x = 1", [])])
    project.write_spec(
        {
            "name": "servetest",
            "stages": {"train": {"notebook": notebook}},
            "retrain": {"model": "m", "stage": "train", "metric": "auc"},
        }
    )
    features = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "b": [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]})
    labels = [0, 0, 0, 1, 1, 1]
    found = Store(root=project.root, columns=list(features.columns), rows=features.values.tolist())
    client = found.client()
    experiment = client.create_experiment("servetest", artifact_location=(project.root / "mlruns").as_uri())
    for version, y in (("1", labels), ("2", [1 - v for v in labels])):
        model = LogisticRegression().fit(features, y)
        found.predictions[version] = [int(p) for p in model.predict(features)]
        saved = project.root / f"model-{version}"
        mlflow.sklearn.save_model(model, saved, signature=infer_signature(features, model.predict(features)))
        run = client.create_run(experiment)
        client.log_artifacts(run.info.run_id, str(saved), "model")
        client.set_terminated(run.info.run_id)
        if version == "1":
            client.create_registered_model("m")
        client.create_model_version("m", f"{run.info.artifact_uri}/model", run.info.run_id)
        _seal(client, run.info.run_id)
    assert found.predictions["1"] != found.predictions["2"]
    client.set_registered_model_alias("m", "champion", "1")
    # A version whose files were removed after it was registered and sealed.
    client.create_registered_model("broken")
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(project.root / "model-1"), "model")
    client.create_model_version("broken", f"{run.info.artifact_uri}/model", run.info.run_id)
    _seal(client, run.info.run_id)
    shutil.rmtree(Path(run.info.artifact_uri.removeprefix("file://")) / "model")
    return found


def _seal(client: Any, run_id: str) -> None:
    """What a stage run does for the versions it registered: seal them, keep the seal in its manifest."""
    from nbops.modelseal import seal_versions
    from nbops.storage.manifest import Manifest
    from tests.storage.factory import fields

    manifest = Manifest(**fields(mlflow_run_id=run_id), files=(), models=seal_versions(client, run_id, None))
    client.log_text(run_id, manifest.to_bytes().decode(), "manifest.json")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}


def _serve(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SERVE, *args], cwd=root, env=_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass
class Serving:
    """A running ``nbops serve``: its process, what it announced, every process it started."""

    proc: subprocess.Popen[str]
    line: str
    err: Path
    family: dict[int, psutil.Process]

    def predict(self, store: Store) -> list[int]:
        match = ADDRESS.match(self.line)
        assert match, self.line
        body = json.dumps({"dataframe_split": {"columns": store.columns, "data": store.rows}}).encode()
        request = urllib.request.Request(  # noqa: S310 - ADDRESS only matches http://
            match["url"], data=body, headers={"Content-Type": "application/json"}
        )
        with NO_PROXY.open(request, timeout=30) as response:
            return [int(p) for p in json.loads(response.read())["predictions"]]

    def collect(self) -> list[psutil.Process]:
        try:
            self.family.update({p.pid: p for p in psutil.Process(self.proc.pid).children(recursive=True)})
        except psutil.Error:
            pass
        return list(self.family.values())


@pytest.fixture
def serving(store: Store, tmp_path: Path) -> Iterator[Any]:
    """Starts ``nbops serve`` and waits for its address; whatever a test leaves running is killed."""
    started: list[Serving] = []

    def start(*args: str) -> Serving:
        err = tmp_path / f"serve-{len(started)}.stderr"
        with err.open("w") as sink:
            proc = subprocess.Popen(
                [*SERVE, *args], cwd=store.root, env=_env(), stdout=subprocess.PIPE, stderr=sink, text=True
            )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(proc, lines), daemon=True).start()
        running = Serving(proc=proc, line="", err=err, family={})
        started.append(running)
        deadline = time.monotonic() + STARTUP_S
        while not running.line:
            try:
                running.line = lines.get(timeout=0.25).rstrip("\n")
            except queue.Empty:
                assert proc.poll() is None, err.read_text()
                assert time.monotonic() < deadline, f"no address within {STARTUP_S} s: {err.read_text()}"
            running.collect()
        running.collect()
        return running

    yield start
    for running in started:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait()
        for left in alive(list(running.family.values())):
            left.kill()


def test_the_champion_answers_once_announced_and_sigterm_stops_every_process(store: Store, serving: Any) -> None:
    port = free_port()
    running = serving("--port", str(port))
    assert (
        running.line
        == f"nbops serve: m version 1 (alias champion) at http://127.0.0.1:{port}/invocations (Ctrl-C stops it)"
    )
    # At the moment the address is printed, the model answers on it.
    assert running.predict(store) == store.predictions["1"]
    commands = [" ".join(_cmdline(p)) for p in running.collect()]
    # It serves the copy of the files it checked against their seal, not the registry's files.
    served = [m for c in commands if (m := re.search(r"mlflow models serve -m (\S+) --env-manager local", c))]
    assert served, commands
    checked = Path(served[0][1])
    assert (checked / "MLmodel").is_file() and checked.is_relative_to(tempfile.gettempdir()), checked
    assert any("uvicorn" in c for c in commands), commands

    sent = time.monotonic()
    running.proc.send_signal(signal.SIGTERM)  # to nbops serve only: the server is in a session of its own
    running.proc.wait(30)
    assert time.monotonic() - sent < 30
    said = running.err.read_text()
    assert running.proc.returncode == 0, said
    assert not listens(port), f"something still listens on {port}"
    left = alive(running.collect())
    assert not left, f"left running: {[(p.pid, _cmdline(p)) for p in left]}"
    assert "nbops serve: serving m version 1 (alias champion) from sqlite:///" in said, said
    assert "(files as sealed)" in said, said
    assert not checked.exists(), "the checked copy outlived the server"
    assert "SIGTERM received; stopping the MLflow scoring server" in said, said


def test_a_restart_serves_the_version_the_champion_alias_moved_to(store: Store, serving: Any) -> None:
    client = store.client()
    client.set_registered_model_alias("m", "champion", "2")  # what the retraining gate does when a challenger wins
    try:
        port = free_port()
        running = serving("m@champion", "--port", str(port))
        assert running.line.startswith("nbops serve: m version 2 (alias champion) at "), running.line
        assert running.predict(store) == store.predictions["2"]
        running.proc.send_signal(signal.SIGINT)
        running.proc.wait(30)
        assert running.proc.returncode == 0, running.err.read_text()
    finally:
        client.set_registered_model_alias("m", "champion", "1")


def test_a_taken_port_fails_fast_with_exit_2_naming_the_port(store: Store) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve(store.root, "--port", str(port), timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"nbops serve: port {port} on 127.0.0.1 is already in use" in result.stderr, result.stderr
    assert "choose another port with --port, e.g. `nbops serve --port " in result.stderr, result.stderr
    assert not result.stdout


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        pytest.param(
            "m@staging",
            "nbops serve: cannot serve m@staging: registered model 'm' has no alias 'staging' "
            "(aliases: champion -> version 1; versions: 1, 2). Serve a version by number, e.g. `nbops serve m/2`.",
            id="unknown-alias",
        ),
        pytest.param(
            "m/7",
            "nbops serve: cannot serve m/7: registered model 'm' has no version 7 "
            "(aliases: champion -> version 1; versions: 1, 2).",
            id="unknown-version",
        ),
        pytest.param(
            "mm@champion",
            "nbops serve: cannot serve mm@champion: there is no registered model 'mm' in the MLflow tracking store "
            "sqlite:///",
            id="unknown-model",
        ),
        pytest.param(
            "m:champion",
            "nbops serve: MODEL 'm:champion' is not a model reference; name one registered model version as "
            "NAME/VERSION, NAME@ALIAS",
            id="not-a-reference",
        ),
    ],
)
def test_a_model_the_registry_does_not_have_fails_with_exit_2_naming_what_it_has(
    store: Store, model: str, expected: str
) -> None:
    result = _serve(store.root, model, "--port", str(free_port()))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"nbops: error: {expected}"), result.stderr
    if model.startswith("mm@"):
        assert "(registered models: broken, m); did you mean 'm'?" in result.stderr, result.stderr
    assert not result.stdout


def test_without_a_champion_the_default_fails_with_exit_2_naming_the_versions(store: Store) -> None:
    client = store.client()
    client.delete_registered_model_alias("m", "champion")
    try:
        result = _serve(store.root, "--port", str(free_port()))
    finally:
        client.set_registered_model_alias("m", "champion", "1")
    assert result.returncode == 2, result.stderr
    assert (
        f"nbops serve: cannot serve m@champion (no MODEL given: the champion of retrain.model in {store.root / 'pipeline.yaml'}): "
        "registered model 'm' has no alias 'champion' (aliases: none; versions: 1, 2). Serve a version by number, "
        "e.g. `nbops serve m/2`, or let the retraining gate choose a champion (run the pipeline)."
    ) in result.stderr, result.stderr


def test_no_model_and_no_retrain_section_fails_with_exit_2(tmp_path: Path) -> None:
    project = Project(tmp_path / "plain")
    project.write_spec({"name": "plain", "stages": {"a": {"notebook": project.add_notebook("a", [("x = 1", [])])}}})
    result = _serve(project.root, "--port", str(free_port()))
    assert result.returncode == 2, result.stderr
    assert "nbops serve: no MODEL given, and " in result.stderr, result.stderr
    assert "has no `retrain:` section" in result.stderr and "nbops serve diagnosis-classifier@champion" in result.stderr
    assert not (project.root / ".nbops").exists()  # nothing was created


def test_a_pipeline_that_never_ran_has_nothing_to_serve_exit_2(tmp_path: Path) -> None:
    project = Project(tmp_path / "new")
    notebook = project.add_notebook("train", [("x = 1", [])])
    project.write_spec(
        {
            "name": "new",
            "stages": {"train": {"notebook": notebook}},
            "retrain": {"model": "m", "stage": "train", "metric": "auc"},
        }
    )
    result = _serve(project.root, "--port", str(free_port()))
    assert result.returncode == 2, result.stderr
    db = project.root / ".nbops" / "mlflow.db"
    assert (
        f"nbops serve: cannot serve m@champion (no MODEL given: the champion of retrain.model in {project.pipeline}): {db} does not exist"
        in result.stderr
    ), result.stderr
    assert "Run the pipeline first, or set MLFLOW_TRACKING_URI" in result.stderr, result.stderr
    assert not db.exists()


def test_a_model_whose_files_are_gone_is_refused_with_exit_4_naming_the_file(store: Store) -> None:
    port = free_port()
    result = _serve(store.root, "broken/1", "--port", str(port), timeout=STARTUP_S)
    assert result.returncode == 4, result.stderr
    assert "model version broken/1: its files are gone from file://" in result.stderr, result.stderr
    assert not result.stdout
    assert not listens(port)


def test_a_changed_model_file_is_refused_naming_the_version_and_the_file(store: Store) -> None:
    version = store.client().get_model_version("m", "2")
    model_dir = Path(version.source.removeprefix("file://"))
    pickled = next(p for p in model_dir.iterdir() if p.name.startswith("model.") and p.suffix != ".sig")
    original = pickled.read_bytes()
    pickled.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        port = free_port()
        result = _serve(store.root, "m/2", "--port", str(port), timeout=STARTUP_S)
        assert result.returncode == 4, result.stderr
        assert f"model version m/2 cannot be vouched for: {pickled.name} has sha256" in result.stderr, result.stderr
        assert not listens(port)
    finally:
        pickled.write_bytes(original)


def test_with_a_verification_key_an_unsigned_model_is_refused(store: Store, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    public = tmp_path / "verify.pem"
    public.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    result = subprocess.run(
        [sys.executable, "-m", "nbops", "verify-model", "m@champion"],
        cwd=store.root,
        env={**_env(), "NBOPS_VERIFY_KEY": str(public)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 4, result.stderr
    assert "m/1 was not signed, and NBOPS_VERIFY_KEY asks for a verified signature" in result.stderr


def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    for line in proc.stdout or []:
        lines.put(line)


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return list(proc.cmdline())
    except psutil.Error:
        return []


def test_the_command_tells_the_model_from_the_pipeline_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbops.errors import InputError
    from nbops.serve import serve_command

    seen: list[tuple[Path, str | None, int]] = []
    monkeypatch.setattr("nbops.serve.serve_model", lambda file, model, port: seen.append((file, model, port)) or 0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NBOPS_PIPELINE_FILE", raising=False)
    assert serve_command(["other/p.yml", "m@champion"], 5002) == 0
    assert serve_command([], 5001) == 0
    assert seen == [(Path("other/p.yml"), "m@champion", 5002), (Path("pipeline.yaml"), None, 5001)]
    for targets in (["a.yaml", "b.yaml"], ["m/1", "m/2"]):
        with pytest.raises(InputError, match="at most one MODEL and one pipeline file"):
            serve_command(targets, 5001)
