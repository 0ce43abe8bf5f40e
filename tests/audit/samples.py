"""A hand-built audit report with hostile values, for the unit tests of the document and renderers."""

from __future__ import annotations

from nbops.audit import AuditReport
from nbops.audit.report import (
    InputInfo,
    ModelInfo,
    NotebookInfo,
    OutputInfo,
    ParameterInfo,
    PipelineRunInfo,
    StageNode,
    Subject,
)
from nbops.audit.verify import Check

HOSTILE = '<script>alert("x")</script><img src="https://evil.example/x.png">'
SHA_A = "a" * 64
SHA_B = "b" * 64


def node(key: str, **overrides: object) -> StageNode:
    stage, _, attempt = key.partition("#")
    fields: dict[str, object] = {
        "key": key,
        "stage": stage,
        "attempt": int(attempt),
        "role": "stage",
        "status": "succeeded",
        "ok": True,
        "mlflow_run_id": "0" * 32,
        "attempt_path": f"runs/p/r/{stage}/attempt-{attempt}",
        "location": f"/store/runs/p/r/{stage}/attempt-{attempt}",
        "notebook": NotebookInfo(path=f"nb/{stage}.ipynb", sha256=SHA_A, location=f"/store/notebooks/{SHA_A}.ipynb"),
        "parameters": (ParameterInfo(name="lr", value=0.5, source="override", default=0.1, spec=None),),
        "metrics": {"auc": 0.9},
        "inputs": (),
        "consumed_by": (),
        "outputs": (OutputInfo(path="outputs/model.pkl", size=7, sha256=SHA_B),),
        "image": "",
        "environment": "python 3.11.7 at /prefix",
        "packages_sha256": SHA_A,
        "git_commit": "c" * 40,
        "git_dirty": True,
        "lock_sha256": "",
        "airflow": None,
        "started_at": "2026-11-23T10:15:00+00:00",
        "ended_at": "2026-11-23T10:16:00+00:00",
        "finished_at": "2026-11-23T10:16:00+00:00",
        "failure": None,
        "notes": (),
    }
    fields.update(overrides)
    return StageNode.model_validate(fields)


def sample(*, failing: bool) -> AuditReport:
    location = "/store/runs/p/r/train/attempt-1/outputs/model.pkl"
    checks = [
        Check(subject="spec copy", ok=True, detail="hashes", scope="pipeline"),
        Check(
            subject="train#1 file outputs/model.pkl",
            ok=not failing,
            detail=f"{location} has sha256 {SHA_A}, the manifest lists {SHA_B}: the file was altered {HOSTILE}",
            scope="train#1",
            location=location,
            expected=SHA_B,
            actual=SHA_A,
        ),
    ]
    return AuditReport(
        subject=Subject(
            kind="model",
            ref="m@champion",
            tracking_uri="sqlite:///p/.nbops/mlflow.db",
            artifact_store="/store",
            model=ModelInfo(
                name="m",
                version="1",
                aliases=("champion",),
                registered_at="2026-11-23T10:20:00+00:00",
                source="runs:/x/model",
                source_run="x",
                tags={"note": HOSTILE},
            ),
        ),
        pipeline_run=PipelineRunInfo(
            mlflow_run_id="1" * 32,
            experiment_id="1",
            pipeline="p",
            run_id="r",
            trigger="nbops run",
            status="succeeded",
            mlflow_status="FINISHED",
            started_at=None,
            ended_at=None,
            spec=None,
            lock=None,
            spec_sha256=SHA_A,
            lock_sha256="",
            git_commit="c" * 40,
            git_dirty=False,
            airflow=None,
            overrides={"train.lr": HOSTILE},
            reused=("prep#1",),
        ),
        stages=(
            node("prep#1"),
            node(
                "train#1",
                role="model",
                ok=not failing,
                inputs=(InputInfo(stage="prep", attempt=1, manifest_sha256=SHA_A, location="/store/prep"),),
                notes=(HOSTILE,),
            ),
        ),
        checks=tuple(checks),
    )
