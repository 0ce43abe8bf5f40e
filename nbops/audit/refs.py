"""Model references as ``nbops audit`` accepts them.

Four forms name one registered model version: ``NAME/VERSION``, ``NAME@ALIAS``,
``models:/NAME/VERSION`` and ``models:/NAME@ALIAS``. Nothing else is guessed: a registry
stage (``models:/NAME/Production``), ``latest`` or a run URI is refused with the forms listed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nbops.errors import InputError

SCHEME = "models:/"
FORMS = "NAME/VERSION, NAME@ALIAS, models:/NAME/VERSION or models:/NAME@ALIAS"
_VERSION = re.compile(r"^[1-9][0-9]*$")
_ALIAS = re.compile(r"^[\w-]+$")


@dataclass(frozen=True)
class ModelRef:
    """One registered model version, by number or by alias (exactly one is set)."""

    name: str
    version: str | None = None
    alias: str | None = None

    def __str__(self) -> str:
        return f"{self.name}/{self.version}" if self.version is not None else f"{self.name}@{self.alias}"


def parse_ref(text: str) -> ModelRef:
    """Parse a model reference.

    Raises:
        InputError: ``text`` is none of the four accepted forms.
    """
    rest = text.strip()
    rest = rest.removeprefix(SCHEME)
    name, alias, version = "", "", ""
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        ok = bool(_ALIAS.match(alias))
    elif "/" in rest:
        name, _, version = rest.rpartition("/")
        ok = bool(_VERSION.match(version))
    else:
        ok = False
    if not ok or not name.strip() or "/" in name or "@" in name or name != name.strip():
        raise InputError(
            f"'{text}' is not a model reference; name one registered model version as {FORMS} "
            "(for example diagnosis/3 or models:/diagnosis@champion), where VERSION is a version "
            "number and ALIAS an alias set in the MLflow model registry."
        )
    return ModelRef(name=name, version=version or None, alias=alias or None)


__all__ = ["FORMS", "ModelRef", "parse_ref"]
