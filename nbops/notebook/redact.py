"""Secrets never leave the stage in clear: redaction of notebooks, logs and recorded values.

Two sources of secrets are masked: the values of the stage's credential-like environment
variables (Kubernetes Secrets arrive as environment variables through ``envFrom``; their
names are matched by :data:`SECRET_NAME`, plus any listed in ``NBOPS_SECRET_ENV``), and
common credential patterns wherever they appear. Written by hand: no maintained library
covers both value masking and notebook structures; the patterns follow well-known token
formats.
"""

from __future__ import annotations

import json
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


def is_secret_name(name: str) -> bool:
    """Whether a variable or parameter name says it holds a credential."""
    return bool(SECRET_NAME.search(name))


class Redactor:
    """Masks known secret values and credential patterns in text."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is masked whole.
        self.values = sorted({v for v in values if len(v) >= MIN_SECRET_LEN}, key=len, reverse=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Redactor:
        """A redactor for the secrets in ``env`` (the process environment by default)."""
        env = os.environ if env is None else env
        listed = {n.strip() for n in env.get(ENV_SECRET_NAMES, "").split(",") if n.strip()}
        return cls(v for k, v in env.items() if k in listed or is_secret_name(k))

    def text(self, text: str) -> str:
        """``text`` with every secret masked."""
        for value in self.values:
            if value in text:
                text = text.replace(value, MASK)
        for pattern in PATTERNS:
            text = pattern.sub(MASK, text)
        for pattern in PREFIXED:
            text = pattern.sub(lambda m: m.group("keep") + MASK, text)
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

    def notebook_json(self, text: str) -> str:
        """A serialized notebook with sources, outputs and metadata strings masked."""
        return json.dumps(self.value(json.loads(text)), indent=1, ensure_ascii=False) + "\n"


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
