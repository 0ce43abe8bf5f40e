"""``nbops ui``: the MLflow UI on 127.0.0.1 for a pipeline's own tracking store.

``mlflow server`` is a tree of processes (the server, uvicorn, a job runner and its huey
consumers). ``nbops ui`` runs it with :func:`nbops.server.run_server`: in a session of its
own, the address announced only once the server answers HTTP, and the whole tree stopped on
any way out (Ctrl-C, SIGTERM, SIGHUP, a failure).
"""

from __future__ import annotations

import sys
from pathlib import Path

from nbops.server import HOST, STARTUP_TIMEOUT_S, ServerKind, check_port, run_server, say
from nbops.spec import load_pipeline
from nbops.storage import open_store
from nbops.storage.layout import state_dir
from nbops.tracking.record import ensure_experiment
from nbops.tracking.store import open_client, tracking_uri

UI = ServerKind(
    command="nbops ui",
    server="the MLflow server",
    port_user="another MLflow UI or another program",
    port_risk="the address would show that program, not this pipeline's runs",
)


def serve(pipeline_file: Path, port: int, *, startup_timeout: float = STARTUP_TIMEOUT_S) -> int:
    """Run ``mlflow server`` on the pipeline's store until interrupted; return the exit code.

    The port is checked before anything starts. A line on stderr says the server is starting;
    the address (``nbops ui: MLflow UI for '<name>' at <page> (Ctrl-C stops it)``, on stdout)
    follows once the server answers HTTP on 127.0.0.1:``port``. SIGINT (Ctrl-C), SIGTERM and
    SIGHUP stop the server and every process it started, as does any failure.

    Exit codes:

    * 0: stopped by SIGINT, SIGTERM or SIGHUP (the way to stop it); nothing left running.
    * 2 (:class:`~nbops.errors.InputError`): the pipeline file is invalid, or the port is not
      a valid port, is already in use or cannot be listened on (the message names the port
      and suggests ``--port``).
    * 3 (:class:`~nbops.errors.InfraError`): the server exited before it answered (the
      message gives its exit code and the tail of its output), did not answer within
      ``startup_timeout`` seconds (default :data:`~nbops.server.STARTUP_TIMEOUT_S`, 180 s; it
      is stopped), or stopped on its own later.
    """
    pipeline = load_pipeline(pipeline_file)
    check_port(port, UI)
    say(UI, f"starting the MLflow server for '{pipeline.name}' on {HOST}:{port}; its address follows once it answers")
    uri = tracking_uri(state_dir(pipeline.root))
    client = open_client(uri)  # creates the schema once, so the server starts on a ready store
    artifacts = open_store(pipeline.root).mlflow_location
    experiment = ensure_experiment(client, pipeline.name, artifacts)
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", uri,
        "--default-artifact-root", artifacts,
        "--host", HOST, "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    # The workflow type opens the model-training view whatever the browser chose last time.
    page = f"http://{HOST}:{port}/#/experiments/{experiment}/runs?workflowType=machine_learning"

    def announce() -> None:
        print(f"nbops ui: MLflow UI for '{pipeline.name}' at {page} (Ctrl-C stops it)", flush=True)

    return run_server(cmd, port, announce, UI, startup_timeout=startup_timeout)
