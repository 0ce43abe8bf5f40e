"""The records of a small pipeline, written by hand as the audit's contract describes them.

Pipeline ``diagnosis``: ``prep`` -> ``train``, recorded as nbops wrote manifests before it sealed
registered models (schema 3). Run :data:`RUN_ID`: ``prep`` failed once
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
from dataclasses import dataclass, field, replace
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
RECORDED: dict[str, Any] = {
    "image": None,
    "environment": ENVIRONMENT,
    "packages_sha256": PACKAGES,
    "git_commit": COMMIT,
    "git_dirty": False,
    "finished_at": "2026-11-23T10:20:00+00:00",
    "nbops_version": "0.1.0",
}
"""What every attempt's manifest records besides its own identity, parameters, metrics and inputs."""

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
    train_run: str
    interactive_run: str
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
    store, sources, spec_raw = _write_sources(root)
    client = open_client(default_tracking_uri(layout.state_dir(root)))
    exp = client.create_experiment(PIPELINE, artifact_location=store.mlflow_location)
    writer = _Writer(client, exp, store, sources, spec_raw)
    prep_parameters = {"rows": 100, "seed": 0}

    # Run RUN_ID: prep fails once, then succeeds; train consumes prep#2 and registers the model.
    parent = writer.parent(RUN_ID, overrides={"train.lr": "0.5"})
    writer.failed(_Attempt(parent, "prep", parameters=prep_parameters))
    prep = _Attempt(parent, "prep", 2, prep_parameters, {"outputs/data.csv": b"a,b\n1,2\n"}, {"rows_out": 2.0})
    prep_run, prep_manifest = writer.succeeded(prep)
    train = _Attempt(
        parent,
        "train",
        parameters={"lr": 0.5, "epochs": 8, "label": "y"},
        outputs={"outputs/model.pkl": b"\x80\x04model", "outputs/metrics.json": b'{"auc": 0.91}'},
        metrics={"auc": 0.91},
        inputs=(("prep", 2, prep_manifest),),
    )
    train_run, _ = writer.succeeded(train)
    writer.close(parent, "succeeded")
    interactive_run = _register(client, store, train_run, sources.notebooks["train"].sha256)

    # Run FAILED_RUN_ID: prep succeeds, train fails in a cell.
    failed_parent = writer.parent(FAILED_RUN_ID, overrides={})
    writer.succeeded(_Attempt(failed_parent, "prep", parameters=prep_parameters, outputs={"outputs/data.csv": b"x\n"}))
    writer.failed(_Attempt(failed_parent, "train", parameters={"lr": 0.1, "epochs": 8, "label": "y"}))
    writer.close(failed_parent, "failed")

    with sqlite3.connect(layout.state_dir(root) / "mlflow.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return Records(
        root=root,
        parent_run=parent.mlflow_run,
        prep_run=prep_run,
        train_run=train_run,
        interactive_run=interactive_run,
        notebooks={stage: source.store_path for stage, source in sources.notebooks.items()},
        spec_rel=sources.spec.store_path,
    )


def _write_sources(root: Path) -> tuple[LocalStore, Sources, bytes]:
    """The notebooks and the spec under ``root``, their content-addressed copies in the store, and their index."""
    (root / "nb").mkdir(parents=True)
    store = LocalStore(layout.state_dir(root) / "artifacts")
    notebooks = {}
    for stage, cells in NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook()
        for source, cell_tags in cells:
            cell = nbformat.v4.new_code_cell(source)
            if cell_tags:
                cell.metadata["tags"] = cell_tags
            nb.cells.append(cell)
        path = root / "nb" / f"{stage}.ipynb"
        nbformat.write(nb, path)
        raw = path.read_bytes()
        listed = SourceFile(path=f"nb/{stage}.ipynb", sha256=sha256(raw), store_path=notebook_rel(sha256(raw)))
        store.publish(listed.store_path, raw)
        notebooks[stage] = listed
    spec_raw = yaml.safe_dump(SPEC, sort_keys=False).encode()
    (root / "pipeline.yaml").write_bytes(spec_raw)
    spec = SourceFile(path="pipeline.yaml", sha256=sha256(spec_raw), store_path=spec_rel(sha256(spec_raw)))
    store.publish(spec.store_path, spec_raw)
    return store, Sources(pipeline=PIPELINE, spec=spec, notebooks=notebooks), spec_raw


def _register(client: MlflowClient, store: LocalStore, train_run: str, notebook_sha256: str) -> str:
    """Versions 1 (champion, from ``train_run``), 2 (sandbox, an interactive run) and 3 (``train_run``, no
    nbops tags) of :data:`MODEL`; the interactive run's id."""
    client.create_registered_model(MODEL)
    source = f"runs:/{train_run}/model"
    version_tags = {
        tags.PIPELINE: PIPELINE,
        tags.RUN_ID: RUN_ID,
        tags.STAGE: "train",
        tags.STAGE_RUN: train_run,
        tags.NOTEBOOK_SHA256: notebook_sha256,
        tags.GIT_COMMIT: COMMIT,
        tags.GIT_DIRTY: "false",
        tags.GATE_DECISION: "promoted",  # the gate moved champion to it
    }
    client.create_model_version(MODEL, source, run_id=train_run, tags=version_tags, await_creation_for=0)
    client.set_registered_model_alias(MODEL, "champion", "1")

    interactive_exp = client.create_experiment(f"{PIPELINE}-interactive", artifact_location=store.mlflow_location)
    interactive = client.create_run(interactive_exp, tags={tags.KIND: "interactive", tags.PIPELINE: PIPELINE})
    interactive_id = str(interactive.info.run_id)
    client.set_terminated(interactive_id, "FINISHED")
    client.create_model_version(MODEL, f"runs:/{interactive_id}/model", run_id=interactive_id, await_creation_for=0)
    client.set_registered_model_alias(MODEL, "sandbox", "2")
    client.create_model_version(MODEL, source, run_id=train_run, await_creation_for=0)  # an older, untagged record
    return interactive_id


@dataclass(frozen=True)
class _Parent:
    """A pipeline run: its nbops run id and its MLflow (parent) run."""

    run_id: str
    mlflow_run: str


@dataclass(frozen=True)
class _Attempt:
    """One stage attempt to write: what it ran with, what it wrote, which upstream manifests it consumed."""

    parent: _Parent
    stage: str
    number: int = 1
    """The attempt number: 1 for the stage's first try in the run."""
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, bytes] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    inputs: tuple[tuple[str, int, Manifest], ...] = ()

    @property
    def rel(self) -> str:
        return layout.attempt_rel(PIPELINE, self.parent.run_id, self.stage, self.number)


class _Writer:
    """Writes runs and attempts the way the stage command and the runner do."""

    def __init__(self, client: MlflowClient, exp: str, store: LocalStore, sources: Sources, spec_raw: bytes) -> None:
        self.client, self.exp, self.store, self.sources, self.spec_raw = client, exp, store, sources, spec_raw

    def parent(self, run_id: str, overrides: dict[str, str]) -> _Parent:
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
        parent = _Parent(run_id, str(run.info.run_id))
        for key, value in overrides.items():
            self.client.log_param(parent.mlflow_run, key, value)
        self.client.log_text(parent.mlflow_run, self.sources.to_text(), SOURCES_ARTIFACT)
        self.client.log_text(parent.mlflow_run, self.spec_raw.decode(), "pipeline/pipeline.yaml")
        return parent

    def close(self, parent: _Parent, status: str) -> None:
        self.client.set_tag(parent.mlflow_run, tags.STATUS, status)
        self.client.set_terminated(parent.mlflow_run, "FINISHED" if status == "succeeded" else "FAILED")

    def _stage_run(self, attempt: _Attempt, extra: dict[str, str]) -> str:
        notebook = self.sources.notebooks[attempt.stage]
        run = self.client.create_run(
            self.exp,
            run_name=f"{attempt.stage} #{attempt.number}",
            tags={
                tags.PARENT_RUN: attempt.parent.mlflow_run,
                tags.KIND: "stage",
                tags.STAGE: attempt.stage,
                tags.ATTEMPT: str(attempt.number),
                tags.PIPELINE: PIPELINE,
                tags.RUN_ID: attempt.parent.run_id,
                tags.NOTEBOOK_PATH: notebook.path,
                tags.NOTEBOOK_SHA256: notebook.sha256,
                tags.ENVIRONMENT: ENVIRONMENT,
                tags.PACKAGES_SHA256: PACKAGES,
                tags.GIT_COMMIT: COMMIT,
                tags.GIT_DIRTY: "false",
                tags.ATTEMPT_PATH: attempt.rel,
                **extra,
            },
        )
        run_id = str(run.info.run_id)
        for name, value in attempt.parameters.items():
            self.client.log_param(run_id, name, value if isinstance(value, str) else json.dumps(value))
        return run_id

    def failed(self, attempt: _Attempt) -> str:
        failure = {
            tags.STATUS: "failed",
            tags.FAILED_CELL: "1",
            tags.FAILED_EXECUTION_COUNT: "2",
            tags.ERROR: "ValueError",
            tags.ERROR_MESSAGE: "cell 1 [2] raised ValueError: too few rows",
        }
        run = self._stage_run(attempt, failure)
        workdir = self.store.root / attempt.rel
        workdir.mkdir(parents=True)
        (workdir / "output.ipynb").write_text("{}")
        self.client.log_artifact(run, str(workdir / "output.ipynb"))
        self.client.set_terminated(run, "FAILED")
        return run

    def _consumed(self, parent: _Parent, stage: str, number: int, manifest: Manifest) -> ManifestInput:
        """The manifest's record of an upstream attempt of the same run it consumed."""
        location = self.store.location(layout.attempt_rel(PIPELINE, parent.run_id, stage, number))
        return ManifestInput(stage=stage, attempt=number, manifest_sha256=manifest.sha256, location=location)

    def succeeded(self, attempt: _Attempt) -> tuple[str, Manifest]:
        run = self._stage_run(attempt, {tags.STATUS: "succeeded"})
        for name, value in attempt.metrics.items():
            self.client.log_metric(run, name, value)
        workdir = self.store.root / attempt.rel
        (workdir / "outputs").mkdir(parents=True)
        (workdir / "output.ipynb").write_text('{"cells": []}')
        (workdir / "output.html").write_text("<html></html>")
        for path, raw in attempt.outputs.items():
            (workdir / path).write_bytes(raw)
        consumed = tuple(self._consumed(attempt.parent, *item) for item in attempt.inputs)
        notebook = self.sources.notebooks[attempt.stage]
        manifest = build_manifest(
            workdir,
            pipeline=PIPELINE,
            run_id=attempt.parent.run_id,
            stage=attempt.stage,
            attempt=attempt.number,
            status="succeeded",
            notebook=NotebookRef(path=notebook.path, sha256=notebook.sha256),
            parameters=attempt.parameters,
            metrics=attempt.metrics,
            mlflow_run_id=run,
            inputs=consumed,
            **RECORDED,
        ).model_copy(update={"schema_version": 3})  # as nbops wrote them before models were sealed
        if consumed:
            self.client.log_inputs(run, datasets=[_upstream_dataset(item) for item in consumed])
        for name in ("output.ipynb", "output.html"):
            self.client.log_artifact(run, str(workdir / name))
        self.client.log_text(run, manifest.to_bytes().decode(), "manifest.json")
        write_manifest(workdir, manifest)
        self.client.set_terminated(run, "FINISHED")
        return run, manifest


def _upstream_dataset(item: ManifestInput) -> DatasetInput:
    """The dataset input a stage run logs for an upstream attempt it consumed."""
    profile = {"manifest_sha256": item.manifest_sha256, "stage": item.stage, "attempt": item.attempt}
    dataset = Dataset(
        name=item.stage,
        digest=item.manifest_sha256[:32],
        source_type="local",
        source=json.dumps({"uri": item.location}),
        profile=json.dumps(profile, sort_keys=True),
    )
    return DatasetInput(dataset, tags=[InputTag(tags.DATASET_CONTEXT, "upstream")])
