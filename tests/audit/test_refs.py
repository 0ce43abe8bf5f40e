"""Model references: the four accepted forms, and everything else refused with the forms named."""

from __future__ import annotations

import pytest

from nbops.audit.refs import FORMS, ModelRef, parse_ref
from nbops.errors import InputError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("diagnosis/3", ModelRef("diagnosis", version="3")),
        ("diagnosis@champion", ModelRef("diagnosis", alias="champion")),
        ("models:/diagnosis/12", ModelRef("diagnosis", version="12")),
        ("models:/diagnosis@champion", ModelRef("diagnosis", alias="champion")),
        ("  my-model_v2@prod-eu  ", ModelRef("my-model_v2", alias="prod-eu")),
        ("models:/Fraud Model/1", ModelRef("Fraud Model", version="1")),
    ],
)
def test_accepted_forms(text: str, expected: ModelRef) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "diagnosis",
        "diagnosis/",
        "diagnosis/0",
        "diagnosis/latest",
        "models:/diagnosis/Production",
        "models:/diagnosis",
        "diagnosis@",
        "@champion",
        "/3",
        "a/b/3",
        "runs:/0123abcd/model",
        "diagnosis@champ ion",
        "diagnosis/3@champion",
    ],
)
def test_other_forms_are_refused_naming_the_accepted_ones(text: str) -> None:
    with pytest.raises(InputError) as raised:
        parse_ref(text)
    message = str(raised.value)
    assert FORMS in message
    assert f"'{text}'" in message
    assert "\n" not in message


def test_a_ref_prints_as_the_short_form() -> None:
    assert str(parse_ref("models:/diagnosis@champion")) == "diagnosis@champion"
    assert str(parse_ref("models:/diagnosis/7")) == "diagnosis/7"
