"""Secrets never leave the stage in clear: redaction of notebooks, logs and recorded values.

Two sources of secrets are masked: the values of the stage's credential-like environment
variables (Kubernetes Secrets arrive as environment variables through ``envFrom``; their
names are matched by :data:`SECRET_NAME`, plus any listed in ``NBOPS_SECRET_ENV``), and
common credential patterns wherever they appear. Written by hand: no maintained library
covers both value masking and notebook structures; the patterns follow well-known token
formats.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
ENV_SECRET_NAMES = "NBOPS_SECRET_ENV"  # noqa: S105 - the name of a variable, not a secret
MIN_SECRET_LEN = 6
SECRET_NAME = re.compile(
    r"(?i)(^|_)(password|passwd|secret|token|api_?key|access_?key|private_?key|credentials?|auth)($|_)"
)
PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),  # GitHub tokens
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),  # Slack tokens
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b"),  # JWTs
]
# Kept parts around the secret: scheme://user: ... @ and "Bearer " ...
PREFIXED = [
    re.compile(r"(?P<keep>\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+(?=@)", re.I),
    re.compile(r"(?P<keep>\bBearer\s+)[A-Za-z0-9._~+/-]{8,}=*", re.I),
    re.compile(r"(?P<keep>(?:aws_secret_access_key|password|passwd)\s*[=:]\s*['\"]?)[^\s'\"]{4,}", re.I),
]

# Each pattern with literals one of which every match contains, whether they are looked up
# in the casefolded text (the pattern ignores case), and characters one of which every match
# contains as it is: a scan for one character costs a fraction of a scan for a word.
_GUARDED: list[tuple[re.Pattern[str], tuple[str, ...], bool, str]] = [
    (PATTERNS[0], ("-----BEGIN ",), False, "-"),
    (PATTERNS[1], ("AKIA", "ASIA"), False, "A"),
    (PATTERNS[2], ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), False, "_"),
    (PATTERNS[3], ("xox",), False, "x"),
    (PATTERNS[4], ("eyJ",), False, "J"),
    (PREFIXED[0], ("://",), False, ":"),
    (PREFIXED[1], ("bearer",), True, "bB"),
    (PREFIXED[2], ("aws_secret_access_key", "password", "passwd"), True, "_wW"),
]


def is_secret_name(name: str) -> bool:
    """Whether a variable or parameter name says it holds a credential."""
    return bool(SECRET_NAME.search(name))


class Redactor:
    """Masks known secret values and credential patterns in text."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is masked whole.
        self.values = sorted({v for v in values if len(v) >= MIN_SECRET_LEN}, key=len, reverse=True)
        self.scanned = 0
        """Characters passed through :meth:`text` so far (what masking has cost)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Redactor:
        """A redactor for the secrets in ``env`` (the process environment by default)."""
        env = os.environ if env is None else env
        listed = {n.strip() for n in env.get(ENV_SECRET_NAMES, "").split(",") if n.strip()}
        return cls(v for k, v in env.items() if k in listed or is_secret_name(k))

    def text(self, text: str) -> str:
        """``text`` with every secret masked.

        A pattern runs only when the text holds a literal every match of it contains (a
        substring test is a hundred times faster than a regular expression over megabytes of
        clean output), and the literals are looked for only when a character they contain is
        there; the literals of case-insensitive patterns are looked up casefolded.
        """
        self.scanned += len(text)
        for value in self.values:
            if value in text:
                text = text.replace(value, MASK)
        folded = ""
        for pattern, literals, fold, chars in _GUARDED:
            if not any(char in text for char in chars):
                continue
            if fold and not folded:
                folded = text.casefold()
            haystack = folded if fold else text
            if not any(literal in haystack for literal in literals):
                continue
            if "keep" in pattern.groupindex:
                text = pattern.sub(lambda m: m.group("keep") + MASK, text)
            else:
                text = pattern.sub(MASK, text)
        return text

    def value(self, value: Any) -> Any:
        """A JSON-like value with every string in it masked."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value


class RedactingStream:
    """A text stream that masks secrets before passing text on (cell output echoed to logs)."""

    def __init__(self, target: Any, redactor: Redactor) -> None:
        self._target = target
        self._redactor = redactor

    def write(self, text: str) -> int:
        self._target.write(self._redactor.text(text))
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)
