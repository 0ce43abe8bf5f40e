from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbops.notebook.redact import MASK, PATTERNS, PREFIXED, RedactingStream, Redactor

pytestmark = pytest.mark.unit


def unguarded(redactor: Redactor, text: str) -> str:
    """Masking as it was before the literal pre-checks: every pattern over the whole text."""
    for value in redactor.values:
        text = text.replace(value, MASK)
    for pattern in PATTERNS:
        text = pattern.sub(MASK, text)
    for pattern in PREFIXED:
        text = pattern.sub(lambda m: m.group("keep") + MASK, text)
    return text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key AKIAIOSFODNN7EXAMPLE here", "key *** here"),
        ("sts ASIAIOSFODNN7EXAMPLE", "sts ***"),
        ("token ghp_" + "a" * 36, "token ***"),
        ("slack xoxb-1234567890-abcdef", "slack ***"),
        ("jwt eyJhbGciOiJI.eyJzdWIiOiIx.SflKxwRJSMeK", "jwt ***"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "***"),
        ("postgresql://etl:hunter2@db/x", "postgresql://etl:***@db/x"),
        ("Authorization: Bearer abcdefgh12345678", "Authorization: Bearer ***"),
        ("Authorization: BEARER abcdefgh12345678", "Authorization: BEARER ***"),
        ("PASSWORD=hunter2hunter2", "PASSWORD=***"),
        ("passwd: 'hunter22'", "passwd: '***'"),
        ("AWS_SECRET_ACCESS_KEY = wJalrXUtnFEMI", "AWS_SECRET_ACCESS_KEY = ***"),
        ("the value s3cr3t-Value-4242 leaked", "the value *** leaked"),
        ("nothing to see " * 3, "nothing to see " * 3),
    ],
)
def test_every_pattern_still_masks(text: str, expected: str) -> None:
    assert Redactor(["s3cr3t-Value-4242"]).text(text) == expected


# Text made of pieces of every pattern, so the pre-checks are tried at their edges.
PIECES = st.sampled_from(
    [
        "AKIA", "ASIA", "IOSFODNN7EXAMPLE", "gh", "p_", "ghp_", "x", "xox", "b-", "eyJ", "abcdefgh.", "://", "u:",
        "@", "/", "Bearer ", "bEaReR", "password", "PassWd", "=", ": ", "'", "aws_secret_access_key", "-----BEGIN ",
        "RSA PRIVATE KEY-----", "-----END ", "\n", " ", "0123456789", "K", "\u212a", "\u017f", "ß", "s3cr3t-Value",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(PIECES, max_size=40).map("".join))
def test_guarded_masking_equals_masking_everything(text: str) -> None:
    redactor = Redactor(["s3cr3t-Value"])
    assert redactor.text(text) == unguarded(redactor, text)


def test_clean_megabytes_are_cheap_and_counted() -> None:
    redactor = Redactor(["s3cr3t-Value-4242"])
    text = ("0123456789" * 10 + "\n") * 50_000
    assert redactor.text(text) is text  # nothing to mask: not even a copy
    assert redactor.scanned == len(text)


def test_stream_masks_what_it_passes_on() -> None:
    target = io.StringIO()
    stream = RedactingStream(target, Redactor(["s3cr3t-Value-4242"]))
    assert stream.write("x s3cr3t-Value-4242 y\n") == len("x s3cr3t-Value-4242 y\n")
    stream.flush()
    assert target.getvalue() == "x *** y\n"
