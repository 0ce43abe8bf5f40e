"""``nbops ui``: the MLflow UI on 127.0.0.1 for a pipeline's own tracking store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nbops.spec import load_pipeline
from nbops.storage import open_store
from nbops.storage.layout import state_dir
from nbops.tracking.record import ensure_experiment
from nbops.tracking.store import open_client, tracking_uri


def serve(pipeline_file: Path, port: int) -> int:
    """Run ``mlflow server`` on the pipeline's store until interrupted; return its exit code."""
    pipeline = load_pipeline(pipeline_file)
    uri = tracking_uri(state_dir(pipeline.root))
    client = open_client(uri)  # creates the schema once, so the server starts on a ready store
    artifacts = open_store(pipeline.root).mlflow_location
    experiment = ensure_experiment(client, pipeline.name, artifacts)
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", uri,
        "--default-artifact-root", artifacts,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    # The workflow type opens the model-training view whatever the browser chose last time.
    page = f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs?workflowType=machine_learning"
    print(f"nbops ui: MLflow UI for '{pipeline.name}' at {page} (Ctrl-C stops it)", flush=True)
    return subprocess.call(cmd)
