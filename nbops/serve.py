"""``nbops serve``: one registered model version behind MLflow's scoring server on 127.0.0.1.

MODEL names the version as ``nbops audit`` accepts it (``NAME/VERSION``, ``NAME@ALIAS``,
``models:/...``); without it, the pipeline's champion, ``<retrain.model>@champion``. The
version is looked up in the registry of the pipeline's own tracking store before anything
starts, and an alias is resolved to its version once, at start: the server keeps serving that
version when the alias moves, so a restart serves a new champion.

The server is ``mlflow models serve --env-manager local`` (uvicorn running
``mlflow.pyfunc.scoring_server``, in this interpreter's environment), run by
:func:`nbops.server.run_server` under the same contract as ``nbops ui``.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nbops import modelseal
from nbops.api import PIPELINE_FILE, resolve_pipeline_file
from nbops.audit.refs import FORMS, ModelRef, parse_ref
from nbops.errors import InfraError, InputError, did_you_mean
from nbops.server import HOST, STARTUP_TIMEOUT_S, ServerKind, check_port, run_server, say
from nbops.spec import Pipeline, load_pipeline
from nbops.storage.layout import state_dir
from nbops.tracking import query
from nbops.tracking.gate import CHAMPION
from nbops.tracking.store import ENV_PROGRESS_BAR, ENV_TRACKING_URI, open_client, redact_uri, sqlite_path, tracking_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import RegisteredModel

COMMAND = "nbops serve"
PROBES = ("/ping",)
"""The scoring server answers ``/ping`` with 200 once the model is loaded."""
LISTED = 20
"""Registered models named, at most, when the one asked for does not exist."""


def serve_model(
    pipeline_file: Path, model: str | None, port: int, *, startup_timeout: float = STARTUP_TIMEOUT_S
) -> int:
    """Serve a registered model version on 127.0.0.1:``port`` until interrupted; return the exit code.

    ``model`` is ``NAME/VERSION``, ``NAME@ALIAS``, ``models:/NAME/VERSION`` or
    ``models:/NAME@ALIAS``; None serves ``<retrain.model>@champion`` of the pipeline. The
    port is checked first, then the version in the registry of the pipeline's tracking store
    (``.nbops/mlflow.db`` beside the pipeline file, or ``$MLFLOW_TRACKING_URI``). A line on stderr
    says which version is served (``serving NAME version 3 (alias champion) ...``); the
    address (``nbops serve: NAME version 3 (alias champion) at
    http://127.0.0.1:PORT/invocations (Ctrl-C stops it)``, on stdout) follows once the server
    answers ``/ping``, that is once the model is loaded. SIGINT (Ctrl-C), SIGTERM and SIGHUP
    stop the server and every process it started (its uvicorn workers included), as does
    any failure.

    Exit codes:

    * 0: stopped by SIGINT, SIGTERM or SIGHUP (the way to stop it); nothing left running.
    * 2 (:class:`~nbops.errors.InputError`): the pipeline file is invalid; MODEL is not a
      model reference; no MODEL is given and the pipeline has no ``retrain:`` section; the
      pipeline's SQLite tracking store does not exist yet; the registry has no such model,
      alias or version (the message lists the models, aliases and versions it has); or the
      port is not a valid port, is already in use or cannot be listened on (the message
      names the port and suggests ``--port``).
    * 3 (:class:`~nbops.errors.InfraError`): the tracking store cannot be read; the server
      exited before it answered (the message gives its exit code and the tail of its
      output, e.g. the model's flavor is not installed), did not answer within
      ``startup_timeout`` seconds (default :data:`~nbops.server.STARTUP_TIMEOUT_S`, 180 s;
      it is stopped), or stopped on its own later.
    """
    pipeline = load_pipeline(pipeline_file)
    ref = _model_ref(pipeline, model)
    kind = _kind(ref, model)
    check_port(port, kind)
    uri = tracking_uri(state_dir(pipeline.root))
    origin = f" (no MODEL given: the champion of retrain.model in {pipeline.path})" if model is None else ""
    version = _version(uri, ref, origin)
    served = f"{ref.name} version {version}" + (f" (alias {ref.alias})" if ref.alias is not None else "")
    with tempfile.TemporaryDirectory(prefix="nbops-serve-") as tmp:
        directory, checked = _vouched(uri, ref.name, version, Path(tmp))
        say(
            kind,
            f"serving {served} from {redact_uri(uri)} ({checked}) with MLflow's scoring server on {HOST}:{port}; "
            "its address follows once the model is loaded",
        )
        address = f"http://{HOST}:{port}/invocations"

        def announce() -> None:
            print(f"{COMMAND}: {served} at {address} (Ctrl-C stops it)", flush=True)  # noqa: T201 - the address

        cmd = _scoring_server(directory, port)
        return run_server(cmd, port, announce, kind, env=_server_env(uri), startup_timeout=startup_timeout)


def verify_model(model: str, to: Path | None = None, pipeline_file: Path | None = None) -> str:
    """``nbops verify-model MODEL [PIPELINE_FILE] [--to DIR]``: check a registered model version's
    files (and, with ``$NBOPS_VERIFY_KEY``, its signature) against what its stage sealed; with
    ``to``, copy the checked files there (a directory that does not exist yet or is empty), so that
    a server started from it serves exactly what was checked. The tracking store is the pipeline
    file's (``$MLFLOW_TRACKING_URI`` when set, which is all a pod needs). Returns the line to print.

    Raises:
        InputError: a bad reference, no such model, alias or version; ``to`` is not empty.
        EvidenceError: the files or the signature differ from the seal (exit 4, naming the file).
        InfraError: a store cannot be read or ``to`` cannot be written.
    """
    ref = parse_ref(model)
    if to is not None and to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise InputError(f"{to}: --to must name a directory that does not exist yet or is empty; nothing was copied.")
    if pipeline_file is None and os.environ.get(ENV_TRACKING_URI, "").strip():
        uri = tracking_uri(Path.cwd())
    else:
        uri = tracking_uri(state_dir(load_pipeline(resolve_pipeline_file(pipeline_file or Path(PIPELINE_FILE))).root))
    version = _version(uri, ref, "")
    named = f"{ref.name} version {version}" + (f" (alias {ref.alias})" if ref.alias is not None else "")
    with tempfile.TemporaryDirectory(prefix="nbops-verify-") as tmp:
        directory, checked = _vouched(uri, ref.name, version, Path(tmp))
        if to is not None:
            try:
                shutil.copytree(directory, to, dirs_exist_ok=True)
            except OSError as exc:
                raise InfraError(f"{to}: cannot copy the checked model there ({exc}).") from exc
    return f"nbops verify-model: {named}: {checked}" + (f"; copied to {to}" if to is not None else "")


def _vouched(uri: str, name: str, version: str, into: Path) -> tuple[Path, str]:
    """Download ``name/version`` below ``into`` and check it against its seal: its directory, and what was checked.

    Raises:
        EvidenceError: it differs (nothing is served or copied).
    """
    key = modelseal.verify_key()
    directory = modelseal.vouch(open_client(uri), name, version, key, into)
    signed = f", signature verified with {key}" if key is not None else ""
    return directory, f"files as sealed{signed}"


def serve_command(targets: Sequence[str], port: int) -> int:
    """``nbops serve [MODEL] [PIPELINE_FILE]``: tell the model from the pipeline file (the one
    ending in ``.yaml`` or ``.yml``; default: ``pipeline.yaml`` here or in a parent) and
    :func:`serve_model`; return its exit code.

    Raises:
        InputError: more than one model or pipeline file given; see :func:`serve_model`.
        InfraError: see :func:`serve_model`.
    """
    files = [t for t in targets if t.endswith((".yaml", ".yml"))]
    models = [t for t in targets if t not in files]
    if len(files) > 1 or len(models) > 1:
        raise InputError(f"{COMMAND}: give at most one MODEL and one pipeline file (a .yaml file).")
    pipeline_file = resolve_pipeline_file(Path(files[0]) if files else Path(PIPELINE_FILE))
    return serve_model(pipeline_file, models[0] if models else None, port)


def _kind(ref: ModelRef, model: str | None) -> ServerKind:
    """What the server contract says of this server: its name, who else takes the port, how to rerun."""
    return ServerKind(
        command=COMMAND,
        server="the MLflow scoring server",
        port_user="another model server or another program",
        port_risk=f"requests to that address would reach that program, not {ref}",
        probes=PROBES,
        rerun=f"{COMMAND} {model.strip()}" if model is not None else COMMAND,
    )


def _scoring_server(model_dir: Path, port: int) -> list[str]:
    """The command line of MLflow's scoring server for the model files in ``model_dir`` (checked
    against their seal: what is served is what was checked), in this environment."""
    return [
        sys.executable, "-m", "mlflow", "models", "serve",
        "-m", str(model_dir),
        "--env-manager", "local",
        "-h", HOST, "-p", str(port),
    ]  # fmt: skip


def _model_ref(pipeline: Pipeline, model: str | None) -> ModelRef:
    """The version to serve: ``model`` parsed, else the champion of ``retrain.model``."""
    if model is not None:
        try:
            return parse_ref(model)
        except InputError as exc:
            raise InputError(f"{COMMAND}: MODEL {exc}") from None
    if pipeline.spec.retrain is None:
        raise InputError(
            f"{COMMAND}: no MODEL given, and {pipeline.path} has no `retrain:` section naming a registered "
            f"model whose champion to serve. Name the model version to serve as {FORMS} "
            f"(for example `{COMMAND} diagnosis-classifier@champion`)."
        )
    return ModelRef(name=pipeline.spec.retrain.model, alias=CHAMPION)


def _version(uri: str, ref: ModelRef, origin: str) -> str:
    """The version number ``ref`` (chosen as ``origin`` says, when not given) names in the registry at ``uri``.

    Raises:
        InputError: no store there yet, or no such model, alias or version (listing what exists).
        InfraError: the store cannot be read.
    """
    where = f"the MLflow tracking store {redact_uri(uri)}"
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise InputError(
            f"{COMMAND}: cannot serve {ref}{origin}: {db} does not exist, so nothing is registered in {where} "
            f"yet. Run the pipeline first, or set {ENV_TRACKING_URI} to the store whose registry holds the model."
        )
    client = open_client(uri)
    registered = _registered(client, ref.name)
    if registered is None:
        raise InputError(f"{COMMAND}: cannot serve {ref}{origin}: {_no_model(client, ref.name, where)}")
    aliases = {str(a): str(v) for a, v in dict(registered.aliases or {}).items()}
    if ref.alias is not None:
        if ref.alias in aliases:
            return aliases[ref.alias]
        versions = _versions(client, ref.name)
        hint = f" Serve a version by number, e.g. `{COMMAND} {ref.name}/{versions[-1]}`" if versions else ""
        if hint and ref.alias == CHAMPION:
            hint += ", or let the retraining gate choose a champion (run the pipeline)"
        raise InputError(
            f"{COMMAND}: cannot serve {ref}{origin}: registered model '{ref.name}' has no alias '{ref.alias}' "
            f"({_known(aliases, versions)}).{hint}{'.' if hint else ''}"
        )
    versions = _versions(client, ref.name)
    if ref.version is not None and int(ref.version) in versions:
        return ref.version
    raise InputError(
        f"{COMMAND}: cannot serve {ref}: registered model '{ref.name}' has no version {ref.version} "
        f"({_known(aliases, versions)})."
    )


def _registered(client: MlflowClient, name: str) -> RegisteredModel | None:
    """The registered model ``name``, or None when the registry has none of that name."""
    return query.registered_model(client, name)


def _versions(client: MlflowClient, name: str) -> list[int]:
    """The version numbers of registered model ``name``, ascending."""
    found = query.versions(client, name if "'" not in name else None)
    return sorted(int(v.version) for v in found if v.name == name)


def _no_model(client: MlflowClient, name: str, where: str) -> str:
    """There is no registered model ``name``: what the registry has instead."""
    found = query.registered_models(client)
    names = sorted(str(m.name) for m in found)
    if not names:
        return f"there is no registered model '{name}' in {where}; no model is registered there yet."
    shown = ", ".join(names[:LISTED]) + (f" and {len(names) - LISTED} more" if len(names) > LISTED else "")
    hint = did_you_mean(name, names) or "."
    return f"there is no registered model '{name}' in {where} (registered models: {shown}){hint}"


def _known(aliases: dict[str, str], versions: list[int]) -> str:
    """``aliases: champion -> version 3; versions: 1, 2, 3``."""
    named = ", ".join(f"{a} -> version {v}" for a, v in sorted(aliases.items())) or "none"
    numbers = ", ".join(map(str, versions)) or "none"
    return f"aliases: {named}; versions: {numbers}"


def _server_env(uri: str) -> dict[str, str]:
    """Our environment, with the pipeline's store and this environment's scripts first on PATH.

    ``mlflow models serve --env-manager local`` starts ``uvicorn`` through the shell, found on
    PATH: it must be the one installed beside this interpreter's MLflow.
    """
    env = dict(os.environ)
    env[ENV_TRACKING_URI] = uri
    env["PATH"] = os.pathsep.join(p for p in (sysconfig.get_path("scripts"), env.get("PATH", "")) if p)
    env.setdefault(ENV_PROGRESS_BAR, "false")  # its redraws would fill the quoted tail
    return env


__all__ = ["serve_command", "serve_model", "verify_model"]
