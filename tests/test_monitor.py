"""`nbops monitor`: the monitor notebook reads the champion's training data through the lineage,
its metric is compared with the trigger, and a trigger that holds sends the drift alert and
starts a retraining run for the same run date, whose gate may move the champion."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nbops.storage.manifest import read_manifest
from nbops.tracking import tags
from tests.conftest import Project
from tests.hookserver import HookServer

MODEL = "clf"
INGEST = [
    ("as_of: str = '2026-01-01'  # batch date", ["parameters"]),
    (
        "import json, nbops\nlevel = int(as_of[5:7])\n(nbops.output_dir() / 'batch.json').write_text(json.dumps({'level': level}))",
        [],
    ),
]
EVALUATE = [
    (
        "import json, nbops\nfrom sklearn.dummy import DummyClassifier\n"
        "level = json.loads((nbops.input_dir('ingest') / 'batch.json').read_text())['level']\n"
        "model = DummyClassifier().fit([[0], [1]], [0, 1])\n"
        f"nbops.log_model(model, name='model', registered_model_name='{MODEL}', pip_requirements=['scikit-learn'])",
        [],
    ),
    ("auc = 0.8 + 0.01 * level", ["metrics"]),
]
MONITOR = [
    ("as_of: str = '2026-01-01'  # date of the new batch\nfail: bool = False  # fail on purpose", ["parameters"]),
    (
        "import json, nbops\nassert not fail, 'asked to fail'\n"
        "trained_on = json.loads((nbops.input_dir('ingest') / 'batch.json').read_text())['level']\n"
        "now = int(as_of[5:7])",
        [],
    ),
    ("drift_score = 0.1 * (now - trained_on)", ["metrics"]),
]


@pytest.fixture
def hook() -> Iterator[HookServer]:
    server = HookServer()
    yield server
    server.close()


def monitored_project(project: Project, hook: HookServer) -> Project:
    for name, cells in (("ingest", INGEST), ("evaluate", EVALUATE), ("monitor", MONITOR)):
        project.add_notebook(name, cells)
    project.write_spec(
        {
            "name": "loop",
            "stages": {
                "ingest": {"notebook": "nb/ingest.ipynb", "parameters": {"as_of": "${run_date}"}},
                "evaluate": {"notebook": "nb/evaluate.ipynb", "needs": ["ingest"]},
            },
            "retrain": {"model": MODEL, "stage": "evaluate", "metric": "auc", "min_improvement": 0.002},
            "monitor": {
                "notebook": "nb/monitor.ipynb",
                "parameters": {"as_of": "${run_date}"},
                "trigger": {"metric": "drift_score", "above": 0.2},
            },
            "alerts": {"urls": [hook.url()]},
        }
    )
    return project


def champion(project: Project) -> str:
    return str(project.client().get_model_version_by_alias(MODEL, "champion").version)


def test_the_loop_monitor_triggers_retraining_and_the_gate_moves_the_champion(
    project: Project, hook: HookServer
) -> None:
    monitored_project(project, hook)
    early = project.nbops("monitor", "--run-date", "2026-01-20")
    assert early.returncode == 0, early.stderr
    assert "no_champion" in early.stderr and not project.attempts("loop", "monitor")

    trained = project.nbops("run", "--run-date", "2026-01-15")
    assert trained.returncode == 0, trained.stderr
    assert champion(project) == "1"

    quiet = project.nbops("monitor", "--run-date", "2026-02-01")
    assert quiet.returncode == 0, quiet.stderr
    assert "drift_score = 0.1; trigger drift_score > 0.2 does not hold" in quiet.stderr
    (watched,) = project.attempts("loop", "monitor")
    assert watched.parent.parent.name.startswith("monitor__")  # never the run `--from` resumes
    (consumed,) = read_manifest(watched).inputs[:1]
    assert consumed.stage == "ingest"  # the champion's training batch, through the lineage
    assert len(project.attempts("loop", "ingest")) == 1

    dry = project.nbops("monitor", "--run-date", "2026-05-01", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry_run" in dry.stderr and "holds" in dry.stderr
    assert len(project.attempts("loop", "ingest")) == 1
    assert not [m for m in hook.messages() if "drift" in m["title"]]

    loop = project.nbops("monitor", "--run-date", "2026-05-01")
    assert loop.returncode == 0, loop.stderr
    assert "retrained" in loop.stderr and "starting a retraining run for 2026-05-01" in loop.stderr
    assert "gate clf: promoted (won)" in loop.stderr
    assert champion(project) == "2"
    titles = [m["title"] for m in hook.messages()]
    assert any("drift detected" in t for t in titles)
    assert any("version 2 of clf is the new champion" in t for t in titles)
    retrained = max(project.attempts("loop", "ingest"), key=lambda p: p.stat().st_mtime)
    assert read_manifest(retrained).parameters["as_of"] == "2026-05-01"
    monitor_runs = [r for r in project.runs("loop") if r.data.tags.get(tags.TRIGGER) == "nbops monitor"]
    holding = [r for r in monitor_runs if r.data.tags.get(tags.MONITOR_HOLDS) == "true"]
    assert any(r.data.tags.get(tags.MONITOR_RETRAIN_RUN) for r in holding)

    settled = project.nbops("monitor", "--run-date", "2026-05-02")
    assert settled.returncode == 0, settled.stderr
    assert "drift_score = 0; trigger drift_score > 0.2 does not hold" in settled.stderr


def test_a_failing_monitor_notebook_is_exit_1_and_bad_overrides_exit_2(project: Project, hook: HookServer) -> None:
    monitored_project(project, hook)
    assert project.nbops("run", "--run-date", "2026-01-15").returncode == 0
    failed = project.nbops("monitor", "-p", "monitor.fail=True")
    assert failed.returncode == 1, failed.stderr
    assert "asked to fail" in failed.stderr
    bad = project.nbops("monitor", "-p", "monitor.fial=True")
    assert bad.returncode == 2
    assert "did you mean 'fail'" in bad.stderr


def test_a_missing_trigger_metric_is_a_failure(project: Project, hook: HookServer) -> None:
    monitored_project(project, hook)
    spec = project.pipeline.read_text().replace("metric: drift_score", "metric: drift_scor")
    project.pipeline.write_text(spec)
    assert project.nbops("run", "--run-date", "2026-01-15").returncode == 0
    missing = project.nbops("monitor", "--run-date", "2026-05-01")
    assert missing.returncode == 1, missing.stderr
    assert "logged no metric 'drift_scor' (it logged: drift_score)" in missing.stderr
    assert len(project.attempts("loop", "ingest")) == 1  # no retraining started


def test_a_drift_triggered_run_re_executes_stages_whose_key_did_not_change(project: Project, hook: HookServer) -> None:
    """The reuse key cannot see that the world drifted: a run the trigger starts for the champion's
    own run date has every key unchanged, yet every stage runs again and a new version is judged."""
    monitored_project(project, hook)
    trained = project.nbops("run", "--run-date", "2026-01-15")
    assert trained.returncode == 0, trained.stderr
    # the new batch is from May; the retraining run is for the champion's date (unchanged keys)
    drifted = project.nbops("monitor", "--run-date", "2026-01-15", "-p", "monitor.as_of=2026-05-01")
    assert drifted.returncode == 0, drifted.stderr
    assert "Drift-triggered run: 2 of 2 stage(s) re-ran (none reused)" in drifted.stderr
    assert "2 stage(s) re-ran" in drifted.stderr.splitlines()[-1]
    assert "reused" not in drifted.stderr.split("starting a retraining run")[1].split("Drift-triggered")[0]
    ingest = project.attempts("loop", "ingest")
    assert len(ingest) == 2 and all(read_manifest(a).reused is None for a in ingest)
    retrain_runs = [r for r in project.runs("loop") if r.data.tags.get(tags.TRIGGER) == "drift"]
    assert len(retrain_runs) == 1  # the parent run of the retraining run, recorded as drift-triggered
    versions = project.client().search_model_versions(f"name = '{MODEL}'")
    assert sorted(int(v.version) for v in versions) == [1, 2]  # a new version was registered and judged
    assert "gate clf: kept (tie)" in drifted.stderr
