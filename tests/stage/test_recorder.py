"""The stage command's end of the recording channel."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbops.errors import InfraError
from nbops.runner.recorder import Recorder
from nbops.stage.recorder import (
    ENV_LAUNCH,
    ENV_RECORDER,
    ENV_RECORDER_KEY,
    DelegatedTracker,
    RecorderLink,
    make_tracker,
)


@pytest.mark.unit
def test_no_recorder_in_the_environment_means_recording_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (ENV_RECORDER, ENV_RECORDER_KEY, ENV_LAUNCH):
        monkeypatch.delenv(var, raising=False)
    assert RecorderLink.from_env() is None
    made = make_tracker(None, lambda **kw: ("local", kw), stage="s")  # type: ignore[arg-type,return-value]
    assert made == ("local", {"stage": "s"})


@pytest.mark.unit
def test_an_unreachable_recorder_is_an_infra_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_RECORDER, str(tmp_path / "no-socket"))
    monkeypatch.setenv(ENV_RECORDER_KEY, "00")
    with pytest.raises(InfraError, match="cannot reach the recorder of the nbops run"):
        RecorderLink.from_env()


@pytest.mark.unit
def test_a_wrong_key_is_refused() -> None:
    with Recorder() as recorder, pytest.raises(InfraError, match="cannot reach the recorder"):
        RecorderLink(recorder.address, b"not the key", "z-1")


@pytest.mark.unit
def test_a_link_makes_a_delegated_tracker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with Recorder() as recorder:
        for key, value in recorder.env("s-1").items():
            monkeypatch.setenv(key, value)
        link = RecorderLink.from_env()
        assert link is not None and link.launch == "s-1"
        tracker = make_tracker(link, lambda **kw: pytest.fail("recorded in process"), uri="sqlite:///x")  # type: ignore[arg-type]
        assert isinstance(tracker, DelegatedTracker)
        tracker.warm()  # nothing to do: the runner renders the HTML
        link.close()
