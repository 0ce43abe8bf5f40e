"""The pip requirements of a model, exact and complete, read from the model object itself.

MLflow infers a logged model's requirements by saving it, loading it again in a subprocess and
listing every package that process imported: seconds per model, and the list names whatever the
loader happened to import (a test runner, a progress bar) while it pins nothing the model's own
packages need. Here the model is walked the way pickle walks it (``pickle._Pickler``, the pure
Python pickler, with every ``save_global`` noted and no bytes kept), which names exactly the
modules whose classes and functions the model is made of; their distributions, with every
distribution those require (``Requires-Dist``, markers evaluated for this interpreter), are
pinned to the versions installed here. Milliseconds, and the list installs the environment the
model was trained in. ``None`` when the model cannot be walked (it does not pickle): MLflow's
inference is then left to do its work.
"""

from __future__ import annotations

import importlib.metadata as metadata
import pickle
import re
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

_NAME = re.compile(r"[-_.]+")


class _ModuleNoter(pickle._Pickler):  # the pure-Python pickler, which can be told what to note
    """Pickles into nothing and notes the module of every global (class, function) it meets."""

    def __init__(self) -> None:
        super().__init__(_Discard(), protocol=5, buffer_callback=lambda _buffer: None)
        self.modules: set[str] = set()

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = getattr(obj, "__module__", None) or pickle.whichmodule(obj, name or obj.__qualname__)  # type: ignore[attr-defined]
        self.modules.add(str(module))
        super().save_global(obj, name)  # type: ignore[misc]


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


def model_modules(model: Any) -> set[str] | None:
    """The top-level packages whose classes and functions make up ``model``; None when it does not pickle."""
    noter = _ModuleNoter()
    try:
        noter.dump(model)
    except Exception:  # any pickling failure means: let MLflow infer
        return None
    tops = {m.split(".")[0] for m in noter.modules}
    return {t for t in tops if t not in sys.stdlib_module_names and t not in ("builtins", "__main__")}


def pinned_requirements(model: Any, also: Iterable[str] = ()) -> list[str] | None:
    """``name==version`` for every distribution ``model`` needs and those they require, with the
    distributions named in ``also`` (a flavor's own, such as ``skops``) and theirs; sorted.
    None when the model cannot be walked."""
    modules = model_modules(model)
    if modules is None:
        return None
    providers = _providers()
    roots = {dist for module in modules for dist in providers.get(module, [])}
    roots |= {_NAME.sub("-", name).lower() for name in also}
    return sorted(f"{name}=={version}" for name, version in _closure(roots).items())


@cache
def _providers() -> Mapping[str, list[str]]:
    """Top-level module -> the distributions providing it (read once per process)."""
    return metadata.packages_distributions()


def _closure(roots: set[str]) -> dict[str, str]:
    """Installed version of each distribution in ``roots`` and of everything they require."""
    found: dict[str, str] = {}
    todo = [_NAME.sub("-", r).lower() for r in roots]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        todo += _required(name)
    return found


@cache
def _required(name: str) -> tuple[str, ...]:
    """The distributions ``name`` requires here (no extras; markers evaluated for this interpreter)."""
    from packaging.requirements import InvalidRequirement, Requirement

    needed = []
    for line in metadata.requires(name) or ():
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            needed.append(_NAME.sub("-", req.name).lower())
    return tuple(needed)
