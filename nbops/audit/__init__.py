"""``nbops audit``: walk a model version's (or a pipeline run's) lineage and recompute every hash.

| module    | job                                                                        |
|-----------|----------------------------------------------------------------------------|
| `refs`    | parse ``NAME/VERSION``, ``NAME@ALIAS``, ``models:/...`` references         |
| `lineage` | the typed lineage: runs, source copies, stage attempts, gaps               |
| `reader`  | read the tracking store: runs, searches, model versions, artifacts         |
| `walk`    | follow the records and store files from a version or run                   |
| `verify`  | the checks: recorded hashes against the bytes in the artifact store        |
| `trust`   | the checks beyond: model files and signature, MLflow's copies, aliases     |
| `report`  | the ``nbops.audit/1`` document                                             |
| `build`   | the document of a walked and verified lineage                              |
| `render`  | its text tree and HTML page                                                |

``nbops audit`` calls :func:`audit_command`; library callers :func:`audit_model` and
:func:`audit_run`.

Where to look: ``pipeline_file`` (default: ``$NBOPS_PIPELINE_FILE``, else ``pipeline.yaml`` in
the working directory or a parent). Its directory gives the embedded MLflow store and the
artifact root; ``$MLFLOW_TRACKING_URI`` and ``$NBOPS_ARTIFACT_ROOT`` override them, and
when both are set no pipeline file is needed.

Errors: ``InputError`` (exit 2) for a bad reference, an unknown model, version, alias or run,
or nowhere to look; ``InfraError`` (exit 3) when a store cannot be read. A report whose
``ok`` is false means evidence does not match its record (exit 4, ``ExitCode.AUDIT``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nbops import modelseal
from nbops.api import PIPELINE_FILE, find_pipeline_file
from nbops.audit.build import build_report
from nbops.audit.lineage import Lineage
from nbops.audit.refs import parse_ref
from nbops.audit.report import AuditReport
from nbops.audit.trust import trust_checks
from nbops.audit.verify import Check, verify
from nbops.audit.walk import Walker
from nbops.errors import InputError
from nbops.storage import Store, layout, open_store
from nbops.storage.atomic import write_atomic
from nbops.tracking.store import ENV_TRACKING_URI, open_client, redact_uri, sqlite_path, tracking_uri

__all__ = ["AuditReport", "audit_command", "audit_model", "audit_run"]


def audit_model(ref: str, *, pipeline_file: Path | None = None) -> AuditReport:
    """Audit a registered model version: ``NAME/VERSION``, ``NAME@ALIAS``, ``models:/NAME/VERSION``
    or ``models:/NAME@ALIAS``.

    Raises:
        InputError: a bad reference; no such model, version or alias; no store to look in.
        InfraError: the tracking or artifact store cannot be read.
    """
    parsed = parse_ref(ref)
    place = _locate(pipeline_file)
    client = open_client(place.uri)
    with Walker(client, place.store) as walker:
        model = walker.resolve(parsed)
        lineage = walker.from_model(parsed, model, given=ref.strip())
        checks = _checks(lineage, place.store)
    return build_report(lineage, checks)


def audit_run(run_id: str, *, pipeline_file: Path | None = None) -> AuditReport:
    """Audit every stage of a pipeline run, by nbops run id (the value of ``tags.RUN_ID``, e.g.
    ``20261123T101500Z-3f9a1c`` or an Airflow DAG run id), not an MLflow run id.

    Raises:
        InputError: no pipeline run has this id; no store to look in.
        InfraError: the tracking or artifact store cannot be read.
    """
    place = _locate(pipeline_file)
    client = open_client(place.uri)
    with Walker(client, place.store) as walker:
        lineage = walker.from_run(run_id.strip(), prefer_pipeline=place.pipeline)
        checks = _checks(lineage, place.store)
    return build_report(lineage, checks)


def _checks(lineage: Lineage, store: Store) -> list[Check]:
    """Every check: the store's records (:mod:`~nbops.audit.verify`), then what auditors trust
    beyond them (:mod:`~nbops.audit.trust`: models, signatures, the MLflow UI's copies)."""
    return [*verify(lineage, store), *trust_checks(lineage, modelseal.verify_key())]


def audit_command(
    targets: Sequence[str],
    *,
    run_id: str | None = None,
    pipeline_file: Path | None = None,
    html_file: Path | None = None,
) -> AuditReport:
    """``nbops audit [MODEL] [PIPELINE_FILE]`` or ``nbops audit --run RUN_ID [PIPELINE_FILE]``:
    audit the model ``targets`` names (or, with ``run_id``, that pipeline run), the pipeline
    file given either as the last of ``targets`` or as ``pipeline_file``; with ``html_file``,
    also write the HTML page there. The report's ``exit_code`` is the command's.

    Raises:
        InputError: not exactly one of a model and ``run_id``, two pipeline files; see
            :func:`audit_model`, :func:`audit_run`.
        InfraError: a store cannot be read, or ``html_file`` cannot be written.
    """
    model, pipeline_file = _targets(targets, run_id, pipeline_file)
    report = (
        audit_model(model, pipeline_file=pipeline_file)
        if model
        else audit_run(str(run_id), pipeline_file=pipeline_file)
    )
    if html_file is not None:
        write_atomic(html_file, report.to_html().encode("utf-8"))
    return report


def _targets(
    targets: Sequence[str], run_id: str | None, pipeline_option: Path | None
) -> tuple[str | None, Path | None]:
    """The model (None with ``run_id``) and the pipeline file named on the command line."""
    wanted = 1 if run_id is None else 0
    extra = list(targets[wanted:])
    if len(targets) < wanted or len(extra) > 1 or (extra and pipeline_option is not None):
        raise InputError(
            "nbops audit: give exactly one of MODEL (e.g. diagnosis-classifier@champion) and --run RUN_ID, "
            "and at most one pipeline file (positional or --pipeline)."
        )
    model = targets[0] if wanted else None
    return model, Path(extra[0]) if extra else pipeline_option


@dataclass(frozen=True)
class _Place:
    uri: str
    store: Store
    pipeline: str | None
    """Name in the pipeline file, when one was found (prefers it when run ids collide)."""


def _locate(pipeline_file: Path | None) -> _Place:
    """The tracking URI and the artifact store to audit."""
    env_uri = os.environ.get(ENV_TRACKING_URI, "").strip()
    env_root = os.environ.get(layout.ENV_ARTIFACT_ROOT, "").strip()
    file = Path(pipeline_file).expanduser() if pipeline_file is not None else find_pipeline_file()
    if file is not None:
        file = file.resolve()
        if not file.is_file():
            raise InputError(f"{file}: pipeline file not found; pass the pipeline.yaml whose records to audit.")
        root = file.parent
    elif env_uri and env_root:
        root = Path.cwd()
    else:
        raise InputError(
            f"no {PIPELINE_FILE} in {Path.cwd()} or its parents, so there is no MLflow store or artifact root "
            f"to audit; run the audit in the pipeline's directory, pass its pipeline file, or set both "
            f"{ENV_TRACKING_URI} and {layout.ENV_ARTIFACT_ROOT}."
        )
    uri = tracking_uri(layout.state_dir(root))
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        beside = f" beside {file}" if file is not None and not env_uri else ""
        raise InputError(
            f"{db}: no MLflow tracking store{beside} ({redact_uri(uri)}); nothing has been recorded there. "
            f"Run the pipeline first, or set {ENV_TRACKING_URI} to the store that holds the records."
        )
    return _Place(uri=uri, store=open_store(root), pipeline=_pipeline_name(file) if file is not None else None)


def _pipeline_name(file: Path) -> str | None:
    """The ``name`` of a pipeline file, best effort (the audit does not need the spec to be valid)."""
    import yaml

    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return str(name) if name else None
