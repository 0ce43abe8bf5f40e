"""The runner's recorder: stage commands record through it, and wait in it to be released."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import nbformat
import pytest

from nbops.errors import InfraError
from nbops.runner.recorder import Recorder
from nbops.stage.recorder import ENV_LAUNCH, ENV_RECORDER, ENV_RECORDER_KEY, RecorderLink, ReleaseCancelled
from nbops.stage.tracker import Recording, StageTracker
from nbops.tracking import tags


def tracker_args(tmp_path: Path, stage: str) -> dict[str, object]:
    return {
        "uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "experiment": "rec",
        "artifact_location": (tmp_path / "mlruns").as_uri(),
        "run_id": "r1",
        "stage": stage,
        "attempt": 1,
        "parent_tags": {tags.TRIGGER: "test"},
        "stage_tags": {tags.PIPELINE: "rec"},
        "parameters": {"C": 0.5},
    }


def link_for(recorder: Recorder, launch: str, monkeypatch: pytest.MonkeyPatch) -> RecorderLink:
    for key, value in recorder.env(launch).items():
        monkeypatch.setenv(key, value)
    link = RecorderLink.from_env()
    assert link is not None
    return link


def record(tracker: object, tmp_path: Path) -> None:
    page = tmp_path / "page.txt"
    page.write_text("executed")
    tracker.finish(  # type: ignore[attr-defined]
        Recording(
            status="FINISHED",
            metrics={"auc": 0.9},
            tags={tags.STATUS: "succeeded"},
            files=[page],
            manifest=None,
            close=False,
        )
    )
    tracker.close("FINISHED")  # type: ignore[attr-defined]


@pytest.mark.integration
def test_a_run_recorded_through_the_recorder_equals_one_recorded_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from nbops.stage.recorder import DelegatedTracker

    with Recorder() as recorder:
        link = link_for(recorder, "s-1", monkeypatch)
        # the kernel started from this process never sees the address or the key
        assert not {ENV_RECORDER, ENV_RECORDER_KEY, ENV_LAUNCH} & set(os.environ)
        delegated = DelegatedTracker(link, **tracker_args(tmp_path, "through"))
        delegated.start()
        record(delegated, tmp_path)
        link.close()
    local = StageTracker(**tracker_args(tmp_path, "local"))  # type: ignore[arg-type]
    local.start()
    record(local, tmp_path)

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    through, here = client.get_run(delegated.run_id()), client.get_run(local.run_id())

    def shape(run: object) -> tuple[object, ...]:
        data = run.data  # type: ignore[attr-defined]
        kept = {k: v for k, v in data.tags.items() if k not in (tags.STAGE, "mlflow.runName")}
        files = [f.path for f in client.list_artifacts(run.info.run_id)]  # type: ignore[attr-defined]
        return run.info.status, data.params, data.metrics, kept, files  # type: ignore[attr-defined]

    assert shape(through) == shape(here)
    assert through.info.status == "FINISHED" and through.data.params == {"C": "0.5"}
    assert through.data.tags[tags.PARENT_RUN] == here.data.tags[tags.PARENT_RUN]  # one pipeline run for both


@pytest.mark.unit
def test_release_and_cancel(monkeypatch: pytest.MonkeyPatch) -> None:
    with Recorder() as recorder:
        early = link_for(recorder, "a-1", monkeypatch)
        waited: list[str] = []

        def wait() -> None:
            early.wait_release()
            waited.append("released")

        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(0.2)
        assert waited == []  # still held
        recorder.release("a-1")
        thread.join(5)
        assert waited == ["released"]

        cancelled = link_for(recorder, "b-1", monkeypatch)
        recorder.release("b-1", go=False)
        recorder.release("b-1")  # the first word stands
        with pytest.raises(ReleaseCancelled):
            cancelled.wait_release()

        held = link_for(recorder, "c-1", monkeypatch)
    # closing the recorder cancels every command still waiting
    with pytest.raises(ReleaseCancelled):
        held.wait_release()


@pytest.mark.unit
def test_failures_come_back_as_infra_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Recorder() as recorder:
        link = link_for(recorder, "x-1", monkeypatch)
        with pytest.raises(InfraError, match="before the stage run was set up"):
            link.call("close", "FINISHED")
        assert link.call("setup", **tracker_args(tmp_path, "x"))  # the stage run's id
        with pytest.raises(InfraError, match="unknown request 'explode'"):
            link.call("explode")
        nb = nbformat.v4.new_notebook()
        nb.cells.append(nbformat.v4.new_markdown_cell("# Title"))
        assert "<h1" in link.call("html", nb)
        address, key = recorder.address, recorder.env("y-1")[ENV_RECORDER_KEY]
    assert not Path(address).exists()  # the socket is gone with the recorder
    assert "<h1" in link.call("html", nb)  # a command still connected is answered until it hangs up
    with pytest.raises(InfraError, match="cannot reach the recorder"):
        RecorderLink(address, bytes.fromhex(key), "y-1")
    link.close()
    with pytest.raises(InfraError, match="went away during 'html'"):
        link.call("html", nb)


@pytest.mark.unit
def test_a_long_tmpdir_still_gets_a_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(deep))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read $TMPDIR
    with Recorder() as recorder:
        assert len(recorder.address.encode()) < 108
        link = link_for(recorder, "t-1", monkeypatch)
        recorder.release("t-1")
        link.wait_release()
