"""Every MLflow tag nbops writes is named once, in one module, and no module spells one itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nbops.tracking import tags

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).parent.parent.parent / "nbops"


def _names() -> dict[str, str]:
    return {k: v for k, v in vars(tags).items() if k.isupper() and isinstance(v, str)}


def test_tag_names_are_unique_and_namespaced() -> None:
    values = list(_names().values())
    assert len(values) == len(set(values))
    assert all(v.startswith(("nbops.", "airflow.", "mlflow.")) for v in values)


def test_no_other_module_spells_a_tag_name() -> None:
    spelled = re.compile(r"[\"'](nbops|airflow)\.[a-z_]+(\.[a-z_0-9]+)*[\"']")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "tags.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            match = spelled.search(line)
            # Python module paths ("nbops.runner...") in imports or strings are not tags.
            if match and match.group(0).strip("\"'") in _names().values():
                offenders.append(f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
