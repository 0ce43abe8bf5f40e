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
from dataclasses import dataclass
from typing import Any

MASK = "***"
ENV_SECRET_NAMES = "NBOPS_SECRET_ENV"  # noqa: S105 - the name of a variable, not a secret
MIN_SECRET_LEN = 6
SECRET_NAME = re.compile(
    r"(?i)(^|_)(password|passwd|secret|token|api_?key|access_?key|private_?key|credentials?|auth)($|_)"
)


@dataclass(frozen=True)
class Rule:
    """A credential pattern and what every match of it contains, so that megabytes of clean
    output are skipped with a substring test instead of a regular-expression scan.

    ``literals``: one of them is in every match (looked up casefolded when ``fold``, for
    patterns that ignore case); ``chars``: one of them is in every match as it is (a scan for
    one character costs a fraction of a scan for a word). A pattern with a ``keep`` group
    masks only what follows it.
    """

    pattern: re.Pattern[str]
    literals: tuple[str, ...]
    chars: str
    fold: bool = False


RULES = (
    Rule(
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        ("-----BEGIN ",),
        "-",
    ),
    Rule(re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), ("AKIA", "ASIA"), "A"),  # AWS access key ids
    Rule(re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), "_"),  # GitHub
    Rule(re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"), ("xox",), "x"),  # Slack tokens
    Rule(re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b"), ("eyJ",), "J"),  # JWTs
    # Kept parts around the secret: scheme://user: ... @, "Bearer " ..., password= ...
    Rule(re.compile(r"(?P<keep>\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+(?=@)", re.I), ("://",), ":"),
    Rule(re.compile(r"(?P<keep>\bBearer\s+)[A-Za-z0-9._~+/-]{8,}=*", re.I), ("bearer",), "bB", fold=True),
    Rule(
        re.compile(r"(?P<keep>(?:aws_secret_access_key|password|passwd)\s*[=:]\s*['\"]?)[^\s'\"]{4,}", re.I),
        ("aws_secret_access_key", "password", "passwd"),
        "_wW",
        fold=True,
    ),
)
PATTERNS = [r.pattern for r in RULES if "keep" not in r.pattern.groupindex]
"""Patterns whose whole match is masked."""
PREFIXED = [r.pattern for r in RULES if "keep" in r.pattern.groupindex]
"""Patterns that keep their ``keep`` group and mask what follows."""


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
        for rule in RULES:
            if not any(char in text for char in rule.chars):
                continue
            if rule.fold and not folded:
                folded = text.casefold()
            haystack = folded if rule.fold else text
            if not any(literal in haystack for literal in rule.literals):
                continue
            if "keep" in rule.pattern.groupindex:
                text = rule.pattern.sub(lambda m: m.group("keep") + MASK, text)
            else:
                text = rule.pattern.sub(MASK, text)
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
