"""The run record written without MLflow reads back through MLflow exactly as the one MLflow writes:
the same nbops calls, once through each client, compared field by field; and it is used only
where the database is at the installed MLflow's revision."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from nbops.cachedir import ENV_CACHE_DIR
from nbops.storage.manifest import ManifestInput
from nbops.tracking import pipeline_run, record, tags, template
from nbops.tracking.sqlite_client import SqliteClient, record_client
from nbops.tracking.store import default_tracking_uri, open_client, sqlite_path
from nbops.tracking.who import who_tags

pytestmark = pytest.mark.integration

PIPELINE = "equal"
CONSUMED = (
    ManifestInput(stage="prep", attempt=2, manifest_sha256="ab" * 32, location="/store/runs/p/r/prep/attempt-2"),
    ManifestInput(stage="feat", attempt=1, manifest_sha256="cd" * 32, location="s3://b/runs/p/r/feat/attempt-1"),
)


@pytest.fixture
def uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ready embedded store with the pipeline's experiment, as a first ``nbops run`` leaves it."""
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "cache"))
    uri = default_tracking_uri(tmp_path / "store")
    record.ensure_experiment(open_client(uri), PIPELINE, (tmp_path / "art" / "mlflow").as_uri())
    return uri


def _record(client: Any, run_id: str) -> tuple[str, str]:
    """What the runner writes for a pipeline run with one reused stage: the parent, its sources
    and overrides, the stage run (params, tags, upstream inputs, a metric, the manifest), both closed."""
    exp = record.ensure_experiment(client, PIPELINE, None)
    parent = pipeline_run.get_or_create(client, exp, PIPELINE, run_id, {tags.TRIGGER: "nbops run", **who_tags()})
    assert pipeline_run.get_or_create(client, exp, PIPELINE, run_id, {}) == parent  # found, not made again
    record.call(client.log_text, parent, "name: equal\n", "pipeline/pipeline.yaml", what="log")
    record.log_parameters(client, parent, {"train.lr": 0.1, "train.name": "x"})
    record.set_tags(client, parent, {tags.REUSED: "prep train"})
    stage = record.start_stage_run(
        client, exp, parent, stage="train", attempt=1, extra_tags={tags.RUN_ID: run_id, **who_tags()}, point=3
    )
    record.log_parameters(client, stage, {"lr": 0.1, "layers": [1, 2], "name": "x"})
    record.log_batch(client, stage, metrics={"score": 0.5}, tags={tags.STATUS: "cached"})
    record.log_upstream(client, stage, CONSUMED)
    record.log_upstream(client, stage, CONSUMED[:1])  # a retried record adds nothing
    record.call(client.log_text, stage, '{"attempt": 1}', "manifest.json", what="upload the manifest")
    record.finish_run(client, stage, "FINISHED")
    record.set_tags(client, parent, {tags.STATUS: "succeeded"})
    record.finish_run(client, parent, "FINISHED")
    return parent, stage


def _view(mlflow: Any, run_id: str, ids: dict[str, str]) -> dict[str, Any]:
    """Everything MLflow reads back about a run, its ids replaced by names."""
    run = mlflow.get_run(run_id)
    info = run.info
    assert info.start_time > 0 and info.end_time >= info.start_time

    def named(text: str) -> str:
        for real, name in ids.items():
            text = text.replace(real, name)
        return text

    artifacts = Path(info.artifact_uri.removeprefix("file://"))
    return {
        "info": {k: named(str(getattr(info, k))) for k in ("status", "lifecycle_stage", "user_id", "run_name",
                                                          "experiment_id", "artifact_uri")},
        "tags": {k: named(v) for k, v in run.data.tags.items()},
        "params": run.data.params,
        "metrics": run.data.metrics,
        "history": [(m.key, m.value, m.step) for k in run.data.metrics for m in mlflow.get_metric_history(run_id, k)],
        "inputs": sorted(
            (d.dataset.name, d.dataset.digest, d.dataset.source_type, d.dataset.source, d.dataset.schema,
             d.dataset.profile, sorted((t.key, t.value) for t in d.tags))
            for d in run.inputs.dataset_inputs
        ),
        "files": sorted((str(p.relative_to(artifacts)), p.read_text()) for p in artifacts.rglob("*") if p.is_file()),
    }  # fmt: skip


def test_the_record_reads_back_through_mlflow_as_mlflow_writes_it(uri: str) -> None:
    from mlflow import MlflowClient

    fast = record_client(uri, PIPELINE, None)
    assert isinstance(fast, SqliteClient)
    mlflow = MlflowClient(uri)
    theirs = _record(open_client(uri), "run-1")
    mine = _record(fast, "run-2")
    for ours, reference in zip(mine, theirs, strict=True):
        names = {mine[0]: "PARENT", mine[1]: "STAGE", theirs[0]: "PARENT", theirs[1]: "STAGE", "run-1": "RUN"}
        names["run-2"] = "RUN"
        assert _view(mlflow, ours, names) == _view(mlflow, reference, names)
    assert mlflow.get_run(mine[1]).data.tags[tags.PARENT_RUN] == mine[0]
    exp = mlflow.get_experiment_by_name(PIPELINE).experiment_id
    found = mlflow.search_runs([exp], filter_string=f"tags.`{tags.PARENT_RUN}` = '{mine[0]}'")
    assert [r.info.run_id for r in found] == [mine[1]]
    # both clients find the same runs, in the same order
    for client in (fast, open_client(uri)):
        assert pipeline_run.find(client, exp, "run-2") == mine[0]
        assert [r.info.run_id for r in client.search_runs([exp], filter_string=f"tags.`{tags.STAGE}` = 'train'")] == [
            mine[1],
            theirs[1],
        ]


def test_mlflow_refusals_are_refusals_here_too(uri: str) -> None:
    fast = record_client(uri, PIPELINE, None)
    assert fast is not None
    exp = record.ensure_experiment(fast, PIPELINE, None)
    run = record.start_stage_run(fast, exp, "p", stage="s", attempt=1, extra_tags={})
    record.log_parameters(fast, run, {"lr": 1})
    with pytest.raises(Exception, match="lr"):
        record.log_parameters(fast, run, {"lr": 2})  # params never change
    with pytest.raises(Exception, match="at most 8000"):
        record.set_tags(fast, run, {"long": "x" * 8001})
    fast.delete_run(run)
    with pytest.raises(Exception, match="not active"):
        record.finish_run(fast, run, "FINISHED")


def test_only_a_store_at_this_mlflows_revision_is_written_without_it(uri: str, tmp_path: Path) -> None:
    assert record_client(uri, PIPELINE, None) is not None
    assert record_client(uri, "new", None) is None  # a new experiment needs a local artifact location
    assert record_client(uri, "new", "s3://bucket/mlflow") is None
    assert record_client(uri, "new", "file:///somewhere/mlflow") is not None
    assert record_client("postgresql://db/mlflow", PIPELINE, None) is None
    db = sqlite_path(uri)
    assert db is not None
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = 'feedfacecafe'")
    assert record_client(uri, PIPELINE, None) is None
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (template.head_revision(),))
    assert record_client(uri, PIPELINE, None) is not None
    import mlflow

    template.template_path(mlflow.__version__).unlink()  # no template: this MLflow's revision is not known
    assert record_client(uri, PIPELINE, None) is None


def test_an_experiment_whose_artifacts_live_elsewhere_goes_through_mlflow(uri: str) -> None:
    record.ensure_experiment(open_client(uri), "remote", "s3://bucket/mlflow")
    assert record_client(uri, "remote", "file:///here/mlflow") is None


def test_a_new_experiment_is_the_one_mlflow_creates(uri: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    location = (tmp_path / "a b" / "mlflow").as_uri()
    fast = record_client(uri, "mine", location)
    assert fast is not None
    made = {"mine": record.ensure_experiment(fast, "mine", location)}
    made["theirs"] = record.ensure_experiment(open_client(uri), "theirs", location)
    assert record.ensure_experiment(fast, "mine", location) == made["mine"]  # found, not made again
    mlflow = MlflowClient(uri)
    views = []
    for name, experiment_id in made.items():
        e = mlflow.get_experiment(experiment_id)
        assert e.name == name and e.creation_time > 0 and e.last_update_time == e.creation_time
        views.append((e.artifact_location, e.lifecycle_stage, e.tags, getattr(e, "workspace", None)))
    assert views[0] == views[1]
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        fast.create_experiment("mine", location)  # names are unique, as in MLflow


def test_writers_beside_mlflow_lose_nothing(uri: str) -> None:
    """Runs recorded at once by this client in two threads and by MLflow in another process all land."""
    import subprocess
    import sys
    import threading

    code = (
        "import sys\nfrom nbops.tracking import record\nfrom nbops.tracking.store import open_client\n"
        "c = open_client(sys.argv[1]); e = record.ensure_experiment(c, 'equal', None)\n"
        "for n in range(15):\n"
        "    r = record.start_stage_run(c, e, 'p', stage='mlflow', attempt=n + 1, extra_tags={})\n"
        "    record.log_parameters(c, r, {'n': n}); record.finish_run(c, r, 'FINISHED')\n"
    )
    other = subprocess.Popen([sys.executable, "-c", code, uri], stderr=subprocess.PIPE, text=True)

    def write(name: str) -> None:
        fast = record_client(uri, PIPELINE, None)
        assert fast is not None
        exp = record.ensure_experiment(fast, PIPELINE, None)
        for n in range(15):
            run = record.start_stage_run(fast, exp, "p", stage=name, attempt=n + 1, extra_tags={})
            record.log_parameters(fast, run, {"n": n})
            record.finish_run(fast, run, "FINISHED")

    threads = [threading.Thread(target=write, args=(name,)) for name in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _, err = other.communicate(timeout=300)
    assert other.returncode == 0, err
    runs = open_client(uri).search_runs([open_client(uri).get_experiment_by_name(PIPELINE).experiment_id])
    finished = sorted((r.data.tags[tags.STAGE], r.data.params["n"]) for r in runs if r.info.status == "FINISHED")
    assert finished == sorted((s, str(n)) for s in ("one", "two", "mlflow") for n in range(15))
