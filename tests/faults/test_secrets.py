"""Secrets never leave the stage in clear: not in the archived notebook, the HTML, MLflow or
the logs; the HTML runs no script; parameters that look like credentials are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbops.notebook.redact import Redactor
from tests.conftest import Project

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-Value-4242"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
DB_PASSWORD = "hunter2hunter2"


def test_secrets_are_masked_everywhere(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAREHOUSE_PASSWORD", SECRET)  # as Kubernetes injects a Secret via envFrom
    project.add_notebook(
        "leak",
        [
            ("dsn: str = 'sqlite://'  # connection string", ["parameters"]),
            ("import os\nprint('password is', os.environ['WAREHOUSE_PASSWORD'])", []),
            (f"print('key {AWS_KEY}')\nprint(dsn)", []),
            ("from IPython.display import HTML\nHTML('<b>x</b><script>alert(1)</script>')", []),
            ("raise RuntimeError('cannot log in with ' + os.environ['WAREHOUSE_PASSWORD'])", []),
        ],
    )
    project.write_spec(
        {
            "name": "sec",
            "stages": {
                "leak": {
                    "notebook": "nb/leak.ipynb",
                    "parameters": {"dsn": f"postgresql://etl:{DB_PASSWORD}@warehouse/db"},
                }
            },
        }
    )
    result = project.nbops("run", "pipeline.yaml")
    assert result.returncode == 1, result.stdout + result.stderr
    (attempt,) = project.attempts("sec", "leak")
    texts = {
        "stdout": result.stdout,
        "stderr": result.stderr,
        "output.ipynb": (attempt / "output.ipynb").read_text(),
        "output.html": (attempt / "output.html").read_text(),
    }
    texts.update({f"log {p.name}": p.read_text() for p in (attempt.parent.parent / ".logs").glob("*.log")})
    run = next(r for r in project.runs("sec") if r.data.tags.get("nbops.stage") == "leak")
    texts["mlflow params"] = repr(run.data.params)
    texts["mlflow tags"] = repr(run.data.tags)
    for where, text in texts.items():
        for secret in (SECRET, AWS_KEY, DB_PASSWORD):
            assert secret not in text, f"{secret} leaked into {where}"
    assert "password is ***" in texts["output.ipynb"]
    assert "postgresql://etl:***@warehouse/db" in texts["output.ipynb"]
    assert run.data.params["dsn"] == "postgresql://etl:***@warehouse/db"
    assert "cannot log in with ***" in run.data.tags["nbops.error_message"]
    assert "<script" not in texts["output.html"].lower()


def test_parameters_that_look_like_secrets_are_refused(project: Project) -> None:
    project.add_notebook("p", [("api_token = ''\nrows = 3", ["parameters"])])
    project.write_spec({"name": "sec", "stages": {"p": {"notebook": "nb/p.ipynb"}}})
    result = project.nbops("run", "pipeline.yaml")
    assert result.returncode == 2
    assert "api_token look like credentials" in result.stderr
    assert not project.attempts("sec", "p")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("token ghp_" + "a" * 36, "token ***"),
        ("Authorization: Bearer abcdefghijk.lmnop", "Authorization: Bearer ***"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "***"),
        ("https://user:pa55word@host/x", "https://user:***@host/x"),
        ("nothing secret here: /home/user/data.csv", "nothing secret here: /home/user/data.csv"),
    ],
)
def test_credential_patterns(text: str, masked: str) -> None:
    assert Redactor().text(text) == masked


@pytest.mark.unit
def test_only_credential_like_variables_are_masked() -> None:
    redactor = Redactor.from_env(
        {"DB_PASSWORD": "longenough1", "HOME": "/home/nbops", "MY_VAR": "plainvalue", "NBOPS_SECRET_ENV": "MY_VAR"}
    )
    assert redactor.text("longenough1 /home/nbops plainvalue") == "*** /home/nbops ***"
    assert Path("/home/nbops").as_posix() in redactor.text("/home/nbops")
