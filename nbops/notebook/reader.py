"""Read a notebook from disk and validate it with nbformat, with errors naming the file.

Also the one judge of whether a notebook is a Python notebook (:func:`check_python`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from nbops.errors import InputError

KERNEL_NAME = "python3"
"""Stages always run on the native Python kernel of the stage's own environment."""
OTHER_KERNELS: dict[str, str] = {
    word: language
    for language, words in {
        "R": "ir irkernel r sparkrkernel",
        "Julia": "julia ijulia",
        "the shell": "bash sh zsh powershell",
        "JavaScript": "javascript ijavascript nodejs deno",
        "TypeScript": "typescript tslab",
        "Scala": "scala almond sparkkernel",
        "Java": "java ijava",
        "Kotlin": "kotlin",
        "Go": "go golang gophernotes gonb",
        "Rust": "rust evcxr",
        "C++": "xcpp cling",
        ".NET": "net csharp fsharp",
        "Ruby": "ruby iruby",
        "Perl": "perl iperl",
        "Haskell": "haskell ihaskell",
        "Octave": "octave",
        "MATLAB": "matlab imatlab",
        "SAS": "sas",
        "Stata": "stata",
        "SQL": "sql xsql",
        "Wolfram": "wolframlanguage",
        "Elixir": "elixir",
        "Erlang": "ierl",
        "Clojure": "clojure",
        "Lua": "lua",
        "PHP": "php",
        "Swift": "swift",
        "OCaml": "ocaml",
    }.items()
    for word in words.split()
}
"""Kernel names (their first word) of other languages' Jupyter kernels, and the language."""
_PYTHON = re.compile(r"(?i)i?python\b|i?python\d")
_FIRST_WORD = re.compile(r"[.\-_]*([a-z]+)")
_CONDA_KERNEL = re.compile(r"conda-(?:env-.+|root)-([a-z]+)")


@dataclass(frozen=True)
class LoadedNotebook:
    """A validated notebook, the exact bytes it was read from and their sha256."""

    path: Path
    node: NotebookNode
    raw: bytes
    sha256: str


def sha256_bytes(raw: bytes) -> str:
    """Hex sha256 of some bytes."""
    return hashlib.sha256(raw).hexdigest()


def parse_notebook(raw: bytes, path: Path) -> LoadedNotebook:
    """Parse and validate notebook bytes; ``path`` is only used to name the file in errors."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a notebook: the file is not UTF-8 text.") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}: not a notebook: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})."
        ) from None
    if not isinstance(data, dict) or "cells" not in data:
        raise InputError(f"{path}: not a notebook: the JSON has no 'cells' list.")
    _complete_kernelspec(data)
    try:
        node = nbformat.reads(json.dumps(data), as_version=4)  # type: ignore[no-untyped-call]
        nbformat.validate(node)
    except nbformat.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) if getattr(exc, "absolute_path", None) else ""
        at = f" at {where}" if where else ""
        first = str(exc.message).splitlines()[0] if getattr(exc, "message", None) else str(exc).splitlines()[0]
        raise InputError(f"{path}: not a valid nbformat 4 notebook{at}: {first}") from None
    except Exception as exc:  # nbformat raises several types for unreadable documents
        raise InputError(f"{path}: not a valid notebook: {exc}") from None
    return LoadedNotebook(path=path, node=node, raw=raw, sha256=sha256_bytes(raw))


def _complete_kernelspec(data: dict[str, Any]) -> None:
    """Name the kernel a kernelspec leaves unnamed: stages run on python3 whatever it says.

    nbformat requires ``name`` and ``display_name`` once there is a kernelspec, yet notebooks
    with only a ``language`` exist (nbclient's ``Output.ipynb``); refusing them would refuse a
    notebook that runs, and leaving the gap would make the archived notebook invalid (the
    HTML export validates). Only the missing fields are added: ``name`` is python3,
    ``display_name`` repeats the name. :func:`check_python` then judges the language.
    """
    metadata = data.get("metadata")
    spec = metadata.get("kernelspec") if isinstance(metadata, dict) else None
    if not isinstance(spec, dict) or ("name" in spec and "display_name" in spec):
        return
    if "name" not in spec:
        spec["name"] = KERNEL_NAME
    if "display_name" not in spec:
        spec["display_name"] = "Python 3" if spec["name"] == KERNEL_NAME else str(spec["name"])


def check_python(node: NotebookNode, path: Path) -> None:
    """Refuse a notebook written for another language; stages run it on the python3 kernel.

    Three fields can say what language a notebook is in, and each is read:

    - ``metadata.kernelspec.language`` and ``metadata.language_info.name`` (written by the
      kernel that last ran it) must be Python (``python``, ``python3``, ``ipython``..., any
      case) when present and not empty;
    - ``metadata.kernelspec.name`` is only a kernel's installed name, often an environment's
      (``python3``, ``conda-env-foo-py``, ``.venv``, ``my-project``), so it refuses only when
      it names a known kernel of another language: its first word (up to a ``-``, ``_``,
      ``.`` or digit) is one of :data:`OTHER_KERNELS` (``ir``, ``julia-1.9``, ``bash``,
      ``xcpp17``...), or it is nb_conda_kernels' ``conda-env-NAME-LANG`` with a LANG other
      than ``py``. A name containing ``python`` always passes; unknown names pass.

    A notebook without any of these runs as Python. Every field that disagrees is named.

    Raises:
        InputError: a field says another language.
    """
    metadata = node.get("metadata", {})
    spec = metadata.get("kernelspec") or {}
    info = metadata.get("language_info") or {}
    problems = []
    for field, value in (
        ("metadata.kernelspec.language", spec.get("language")),
        ("metadata.language_info.name", info.get("name")),
    ):
        if isinstance(value, str) and value.strip() and not _PYTHON.match(value.strip()):
            problems.append(f"`{field}` is {value!r}")
    name = spec.get("name")
    other = _kernel_language(name) if isinstance(name, str) else None
    if other:
        problems.append(f"`metadata.kernelspec.name` is {name!r}, a kernel for {other}")
    if problems:
        raise InputError(
            f"{path}: not a Python notebook: {'; '.join(problems)}. nbops stages run notebooks on the "
            f"{KERNEL_NAME} kernel of the stage's environment; port the notebook to Python, or correct its "
            "metadata if it is a Python notebook."
        )


def _kernel_language(name: str) -> str | None:
    """The other language a kernel name says, or None when it may well be Python."""
    name = name.strip().lower()
    if "python" in name:
        return None
    conda = _CONDA_KERNEL.fullmatch(name)
    if conda:
        lang = conda.group(1)
        return None if lang in ("py", "python") else OTHER_KERNELS.get(lang, lang)
    first = _FIRST_WORD.match(name)
    return OTHER_KERNELS.get(first.group(1)) if first else None


def read_notebook(path: Path) -> LoadedNotebook:
    """Read and validate the notebook at ``path``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: notebook not found.") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read notebook ({exc.strerror}).") from exc
    return parse_notebook(raw, path)
