"""The entry points: where the stores are found, and errors raised before anything is read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nbops.audit import audit_command, audit_model, audit_run
from nbops.errors import InfraError, InputError
from nbops.status import ExitCode
from nbops.storage.local import LocalStore
from tests.audit.records import MODEL, RUN_ID, Records

pytestmark = pytest.mark.integration


def test_the_package_exports_exactly_the_api() -> None:
    import nbops.audit

    assert sorted(nbops.audit.__all__) == ["AuditReport", "audit_command", "audit_model", "audit_run"]


def test_a_bad_reference_is_refused_before_any_store_is_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="NAME/VERSION"):
        audit_model("models:/diagnosis/Production")


def test_the_pipeline_file_can_be_named_from_elsewhere(
    template: Records, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert audit_model(f"{MODEL}/1", pipeline_file=template.pipeline_file).ok
    nested = template.root / "nb"
    monkeypatch.chdir(nested)  # found in a parent directory
    assert audit_run(RUN_ID).ok


def test_without_a_pipeline_file_both_variables_locate_the_stores(
    template: Records, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="MLFLOW_TRACKING_URI and NBOPS_ARTIFACT_ROOT"):
        audit_model(f"{MODEL}/1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", template.uri)
    with pytest.raises(InputError, match=r"no pipeline\.yaml"):
        audit_model(f"{MODEL}/1")
    monkeypatch.setenv("NBOPS_ARTIFACT_ROOT", str(template.artifacts))
    assert audit_model(f"{MODEL}/1").ok


def test_a_missing_tracking_store_is_an_input_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pipeline.yaml").write_text("name: empty\nstages: {}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="no MLflow tracking store") as raised:
        audit_run(RUN_ID)
    assert str(tmp_path / ".nbops" / "mlflow.db") in str(raised.value)
    assert not (tmp_path / ".nbops").exists()  # nothing created by looking


def test_an_unreachable_tracking_server_is_an_infra_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("NBOPS_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    with pytest.raises(InfraError) as raised:
        audit_run(RUN_ID)
    assert raised.value.exit_code == 3


def test_an_unreadable_store_is_an_infra_error(records: Records, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: LocalStore, rel: str) -> bytes | None:
        raise InfraError(f"{self.root / rel}: cannot read (Input/output error).")

    monkeypatch.setattr(LocalStore, "read_bytes", refuse)
    with pytest.raises(InfraError, match="cannot read"):
        audit_model(f"{MODEL}/1")


@pytest.mark.parametrize(
    ("targets", "options"),
    [
        ((), {}),  # neither a model nor --run
        (("m/1", "p.yaml", "q.yaml"), {}),  # two pipeline files
        (("m/1", "p.yaml"), {"pipeline_file": Path("q.yaml")}),  # positional and --pipeline
        (("r1", "p.yaml"), {"run_id": "r1"}),  # --run and a model
    ],
)
def test_the_command_refuses_what_names_no_single_subject(targets: tuple[str, ...], options: dict[str, Any]) -> None:
    with pytest.raises(InputError, match=r"give exactly one of MODEL .* and --run RUN_ID"):
        audit_command(targets, **options)


def test_the_command_audits_the_subject_named_and_writes_the_page(
    template: Records, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    page = tmp_path / "audit.html"
    model = audit_command([f"{MODEL}/1", str(template.pipeline_file)], html_file=page)
    assert model.subject.kind == "model" and model.exit_code == ExitCode.OK
    assert page.read_text(encoding="utf-8") == model.to_html()
    run = audit_command([], run_id=RUN_ID, pipeline_file=template.pipeline_file)
    assert run.subject.kind == "run" and run.subject.ref == RUN_ID and run.ok


def test_a_report_with_a_failed_check_exits_4(altered: Records) -> None:
    (altered.attempt_dir("prep", 2) / "outputs" / "data.csv").write_text("altered\n")
    report = audit_command([f"{MODEL}/1"])
    assert not report.ok and report.exit_code == ExitCode.AUDIT == 4
