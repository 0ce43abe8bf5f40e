"""The records of a small pipeline, written by hand as the audit's contract describes them.

Pipeline ``diagnosis``: ``prep`` -> ``train``. Run :data:`RUN_ID`: ``prep`` failed once
(attempt 1, no manifest) and succeeded on attempt 2; ``train`` attempt 1 consumed ``prep#2``
and registered version 1 of :data:`MODEL` (alias ``champion``). Version 2 (alias ``sandbox``)
comes from an interactive run, version 3 from the ``train`` run but without nbops tags (an
older record). Run :data:`FAILED_RUN_ID`: ``prep#1`` succeeded, ``train#1`` failed.

Building takes a few seconds (MLflow creates its SQLite schema), so tests build once and
copy the tree (:meth:`Records.copy_to`) when they alter it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import nbformat
import yaml
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag

from nbops.lock import notebook_rel
from nbops.provenance import SOURCES_ARTIFACT, SourceFile, Sources, spec_rel
from nbops.storage import layout
from nbops.storage.local import LocalStore
from nbops.storage.manifest import Manifest, ManifestInput, NotebookRef, build_manifest, write_manifest
from nbops.tracking import tags
from nbops.tracking.store import default_tracking_uri, open_client

PIPELINE = "diagnosis"
RUN_ID = "20261123T101500Z-3f9a1c"
FAILED_RUN_ID = "20261124T080000Z-a1b2c3"
MODEL = "diagnosis-model"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
ENVIRONMENT = "python 3.11.7 at /prefix"
PACKAGES = "ab" * 32

NOTEBOOKS = {
    "prep": [("rows = 10  # rows to keep\nseed = 0", ["parameters"]), ("import json", [])],
    "train": [("lr = 0.1\nepochs = 5\nlabel = 'y'", ["parameters"]), ("print(lr)", [])],
}
SPEC: dict[str, Any] = {
    "name": PIPELINE,
    "stages": {
        "prep": {"notebook": "nb/prep.ipynb", "parameters": {"rows": 100}},
        "train": {"notebook": "nb/train.ipynb", "needs": ["prep"], "parameters": {"epochs": 8}},
    },
}


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Records:
    """Where everything was written."""

    root: Path
    parent_run: str
    prep_run: str
    prep_failed_run: str
    train_run: str
    interactive_run: str
    failed_parent_run: str
    notebooks: dict[str, str]
    """Stage -> store path of its notebook copy."""
    spec_rel: str

    @property
    def pipeline_file(self) -> Path:
        return self.root / "pipeline.yaml"

    @property
    def uri(self) -> str:
        return default_tracking_uri(layout.state_dir(self.root))

    @property
    def artifacts(self) -> Path:
        return layout.state_dir(self.root) / "artifacts"

    @property
    def store(self) -> LocalStore:
        return LocalStore(self.artifacts)

    def attempt_rel(self, stage: str, attempt: int, run_id: str = RUN_ID) -> str:
        return layout.attempt_rel(PIPELINE, run_id, stage, attempt)

    def attempt_dir(self, stage: str, attempt: int, run_id: str = RUN_ID) -> Path:
        return self.artifacts / self.attempt_rel(stage, attempt, run_id)

    def location(self, rel: str) -> str:
        return self.store.location(rel)

    def run_artifacts(self, run_id: str) -> Path:
        """Local directory of an MLflow run's artifacts (under the store's ``mlflow`` folder)."""
        found = list((self.artifacts / "mlflow").glob(f"**/{run_id}/artifacts"))
        assert len(found) == 1, found
        return found[0]

    def copy_to(self, target: Path) -> Records:
        """An independent copy: the tree, and the MLflow database pointed at the copied artifacts."""
        shutil.copytree(self.root, target)
        db = layout.state_dir(target) / "mlflow.db"
        old, new = self.artifacts.as_uri(), (layout.state_dir(target) / "artifacts").as_uri()
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE experiments SET artifact_location = replace(artifact_location, ?, ?)", (old, new))
            conn.execute("UPDATE runs SET artifact_uri = replace(artifact_uri, ?, ?)", (old, new))
        conn.close()
        return replace(self, root=target)


def build(root: Path) -> Records:
    """Write the pipeline, its sources, the artifact store and the MLflow records under ``root``."""
    (root / "nb").mkdir(parents=True)
    raw_notebooks = {}
    for stage, cells in NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook()
        for source, cell_tags in cells:
            cell = nbformat.v4.new_code_cell(source)
            if cell_tags:
                cell.metadata["tags"] = cell_tags
            nb.cells.append(cell)
        path = root / "nb" / f"{stage}.ipynb"
        nbformat.write(nb, path)
        raw_notebooks[stage] = path.read_bytes()
    spec_raw = yaml.safe_dump(SPEC, sort_keys=False).encode()
    (root / "pipeline.yaml").write_bytes(spec_raw)

    store = LocalStore(layout.state_dir(root) / "artifacts")
    spec_sha = sha256(spec_raw)
    store.publish(spec_rel(spec_sha), spec_raw)
    notebooks = {}
    for stage, raw in raw_notebooks.items():
        notebooks[stage] = SourceFile(
            path=f"nb/{stage}.ipynb", sha256=sha256(raw), store_path=notebook_rel(sha256(raw))
        )
        store.publish(notebook_rel(sha256(raw)), raw)
    sources = Sources(
        pipeline=PIPELINE,
        spec=SourceFile(path="pipeline.yaml", sha256=spec_sha, store_path=spec_rel(spec_sha)),
        notebooks=notebooks,
    )

    client = open_client(default_tracking_uri(layout.state_dir(root)))
    exp = client.create_experiment(PIPELINE, artifact_location=store.mlflow_location)
    writer = _Writer(client, exp, store, root, sources, spec_raw)

    # Run RUN_ID: prep fails once, then succeeds; train consumes prep#2 and registers the model.
    parent = writer.parent(RUN_ID, overrides={"train.lr": "0.5"})
    prep_failed = writer.failed(parent, RUN_ID, "prep", 1, {"rows": 100, "seed": 0})
    prep_run, prep_manifest = writer.succeeded(
        parent, RUN_ID, "prep", 2, {"rows": 100, "seed": 0}, {"outputs/data.csv": b"a,b\n1,2\n"}, {"rows_out": 2.0}
    )
    train_run, _ = writer.succeeded(
        parent,
        RUN_ID,
        "train",
        1,
        {"lr": 0.5, "epochs": 8, "label": "y"},
        {"outputs/model.pkl": b"\x80\x04model", "outputs/metrics.json": b'{"auc": 0.91}'},
        {"auc": 0.91},
        inputs=[("prep", 2, prep_manifest)],
    )
    writer.close(parent, "succeeded")

    client.create_registered_model(MODEL)
    source = f"runs:/{train_run}/model"
    version_tags = {
        tags.PIPELINE: PIPELINE,
        tags.RUN_ID: RUN_ID,
        tags.STAGE: "train",
        tags.STAGE_RUN: train_run,
        tags.NOTEBOOK_SHA256: notebooks["train"].sha256,
        tags.GIT_COMMIT: COMMIT,
        tags.GIT_DIRTY: "false",
    }
    client.create_model_version(MODEL, source, run_id=train_run, tags=version_tags, await_creation_for=0)
    client.set_registered_model_alias(MODEL, "champion", "1")

    interactive_exp = client.create_experiment(f"{PIPELINE}-interactive", artifact_location=store.mlflow_location)
    interactive = client.create_run(interactive_exp, tags={tags.KIND: "interactive", tags.PIPELINE: PIPELINE})
    interactive_id = interactive.info.run_id
    client.set_terminated(interactive_id, "FINISHED")
    client.create_model_version(MODEL, f"runs:/{interactive_id}/model", run_id=interactive_id, await_creation_for=0)
    client.set_registered_model_alias(MODEL, "sandbox", "2")
    client.create_model_version(MODEL, source, run_id=train_run, await_creation_for=0)  # an older, untagged record

    # Run FAILED_RUN_ID: prep succeeds, train fails in a cell.
    failed_parent = writer.parent(FAILED_RUN_ID, overrides={})
    writer.succeeded(
        failed_parent, FAILED_RUN_ID, "prep", 1, {"rows": 100, "seed": 0}, {"outputs/data.csv": b"x\n"}, {}
    )
    writer.failed(failed_parent, FAILED_RUN_ID, "train", 1, {"lr": 0.1, "epochs": 8, "label": "y"})
    writer.close(failed_parent, "failed")

    with sqlite3.connect(layout.state_dir(root) / "mlflow.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return Records(
        root=root,
        parent_run=parent,
        prep_run=prep_run,
        prep_failed_run=prep_failed,
        train_run=train_run,
        interactive_run=interactive_id,
        failed_parent_run=failed_parent,
        notebooks={stage: source.store_path for stage, source in notebooks.items()},
        spec_rel=spec_rel(spec_sha),
    )


class _Writer:
    """Writes runs and attempts the way the stage command and the runner do."""

    def __init__(
        self, client: MlflowClient, exp: str, store: LocalStore, root: Path, sources: Sources, spec_raw: bytes
    ) -> None:
        self.client, self.exp, self.store, self.root = client, exp, store, root
        self.sources, self.spec_raw = sources, spec_raw

    def parent(self, run_id: str, overrides: dict[str, str]) -> str:
        run = self.client.create_run(
            self.exp,
            run_name=f"{PIPELINE} {run_id}",
            tags={
                tags.PIPELINE: PIPELINE,
                tags.RUN_ID: run_id,
                tags.KIND: "pipeline",
                tags.SPEC_SHA256: self.sources.spec.sha256,
                tags.GIT_COMMIT: COMMIT,
                tags.GIT_DIRTY: "false",
                tags.TRIGGER: "nbops run",
            },
        )
        parent = run.info.run_id
        for key, value in overrides.items():
            self.client.log_param(parent, key, value)
        self.client.log_text(parent, self.sources.to_text(), SOURCES_ARTIFACT)
        self.client.log_text(parent, self.spec_raw.decode(), "pipeline/pipeline.yaml")
        return parent

    def close(self, parent: str, status: str) -> None:
        self.client.set_tag(parent, tags.STATUS, status)
        self.client.set_terminated(parent, "FINISHED" if status == "succeeded" else "FAILED")

    def _stage_run(self, parent: str, run_id: str, stage: str, attempt: int, extra: dict[str, str]) -> str:
        notebook = self.sources.notebooks[stage]
        run = self.client.create_run(
            self.exp,
            run_name=f"{stage} #{attempt}",
            tags={
                tags.PARENT_RUN: parent,
                tags.KIND: "stage",
                tags.STAGE: stage,
                tags.ATTEMPT: str(attempt),
                tags.PIPELINE: PIPELINE,
                tags.RUN_ID: run_id,
                tags.NOTEBOOK_PATH: notebook.path,
                tags.NOTEBOOK_SHA256: notebook.sha256,
                tags.ENVIRONMENT: ENVIRONMENT,
                tags.PACKAGES_SHA256: PACKAGES,
                tags.GIT_COMMIT: COMMIT,
                tags.GIT_DIRTY: "false",
                tags.ATTEMPT_PATH: layout.attempt_rel(PIPELINE, run_id, stage, attempt),
                **extra,
            },
        )
        return str(run.info.run_id)

    def _params(self, run: str, parameters: dict[str, Any]) -> None:
        for name, value in parameters.items():
            self.client.log_param(run, name, value if isinstance(value, str) else json.dumps(value))

    def failed(self, parent: str, run_id: str, stage: str, attempt: int, parameters: dict[str, Any]) -> str:
        failure = {
            tags.STATUS: "failed",
            tags.FAILED_CELL: "1",
            tags.FAILED_EXECUTION_COUNT: "2",
            tags.ERROR: "ValueError",
            tags.ERROR_MESSAGE: "cell 1 [2] raised ValueError: too few rows",
        }
        run = self._stage_run(parent, run_id, stage, attempt, failure)
        self._params(run, parameters)
        workdir = self.store.root / layout.attempt_rel(PIPELINE, run_id, stage, attempt)
        workdir.mkdir(parents=True)
        (workdir / "output.ipynb").write_text("{}")
        self.client.log_artifact(run, str(workdir / "output.ipynb"))
        self.client.set_terminated(run, "FAILED")
        return run

    def succeeded(
        self,
        parent: str,
        run_id: str,
        stage: str,
        attempt: int,
        parameters: dict[str, Any],
        outputs: dict[str, bytes],
        metrics: dict[str, float],
        inputs: list[tuple[str, int, Manifest]] | None = None,
    ) -> tuple[str, Manifest]:
        run = self._stage_run(parent, run_id, stage, attempt, {tags.STATUS: "succeeded"})
        self._params(run, parameters)
        for name, value in metrics.items():
            self.client.log_metric(run, name, value)
        rel = layout.attempt_rel(PIPELINE, run_id, stage, attempt)
        workdir = self.store.root / rel
        (workdir / "outputs").mkdir(parents=True)
        (workdir / "output.ipynb").write_text('{"cells": []}')
        (workdir / "output.html").write_text("<html></html>")
        for path, raw in outputs.items():
            (workdir / path).write_bytes(raw)
        consumed = tuple(
            ManifestInput(
                stage=up,
                attempt=number,
                manifest_sha256=manifest.sha256,
                location=self.store.location(layout.attempt_rel(PIPELINE, run_id, up, number)),
            )
            for up, number, manifest in inputs or []
        )
        notebook = self.sources.notebooks[stage]
        manifest = build_manifest(
            workdir,
            pipeline=PIPELINE,
            run_id=run_id,
            stage=stage,
            attempt=attempt,
            status="succeeded",
            notebook=NotebookRef(path=notebook.path, sha256=notebook.sha256),
            parameters=parameters,
            metrics=metrics,
            image=None,
            environment=ENVIRONMENT,
            packages_sha256=PACKAGES,
            git_commit=COMMIT,
            git_dirty=False,
            mlflow_run_id=run,
            finished_at="2026-11-23T10:20:00+00:00",
            nbops_version="0.1.0",
            inputs=consumed,
        )
        if consumed:
            datasets = [
                DatasetInput(
                    Dataset(
                        name=item.stage,
                        digest=item.manifest_sha256[:32],
                        source_type="local",
                        source=json.dumps({"uri": item.location}),
                        profile=json.dumps(
                            {"manifest_sha256": item.manifest_sha256, "stage": item.stage, "attempt": item.attempt},
                            sort_keys=True,
                        ),
                    ),
                    tags=[InputTag(tags.DATASET_CONTEXT, "upstream")],
                )
                for item in consumed
            ]
            self.client.log_inputs(run, datasets=datasets)
        for name in ("output.ipynb", "output.html"):
            self.client.log_artifact(run, str(workdir / name))
        self.client.log_text(run, manifest.to_bytes().decode(), "manifest.json")
        write_manifest(workdir, manifest)
        self.client.set_terminated(run, "FINISHED")
        return run, manifest
