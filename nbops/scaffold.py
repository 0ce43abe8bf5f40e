"""``nbops init``: a new project that runs, promotes and builds its own runner image.

Written files: ``pipeline.yaml`` (two stages), their notebooks (the tags and the notebook
API at work), ``.gitignore`` (``.nbops/``), ``requirements.txt`` (the project's own
libraries, pinned with hashes), a runner ``Dockerfile`` built FROM the nbops runner image,
and ``dags/``. Nothing is ever overwritten: when any of them exists, nothing is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from nbops import __version__
from nbops.errors import InputError
from nbops.notebook.tags import METRICS, PARAMETERS

RUNNER_IMAGE = f"nbops-runner:{'.'.join(__version__.split('.')[:2])}"
"""The runner image the project's image builds FROM (images/runner in the nbops repository)."""


@dataclass(frozen=True)
class Scaffold:
    """What ``nbops init`` wrote."""

    root: Path
    name: str
    files: tuple[Path, ...]

    def describe(self) -> str:
        """What ``nbops init`` prints: each file written, then the next steps."""
        where = "" if self.root == Path(".") else f"cd {self.root} && "
        lines = [f"wrote {path}" for path in self.files]
        lines.append(
            f"nbops init: project '{self.name}' ready. Next: {where}nbops run   (then: nbops promote; "
            f"docker build -t {self.name}-runner:0.1 .)"
        )
        return "\n".join(lines)


def project_name(directory: Path) -> str:
    """A valid pipeline name from a directory name: lowercase, ``[a-z0-9_-]``, starting with a letter."""
    name = re.sub(r"[^a-z0-9_-]+", "-", directory.resolve().name.lower()).strip("-_")
    if not name or not name[0].isalpha():
        name = f"pipeline-{name}" if name else "pipeline"
    return name[:63]


def init_project(directory: Path, name: str | None = None) -> Scaffold:
    """Write a new project into ``directory`` (created if missing).

    Raises:
        InputError: a file the scaffold would write already exists (nothing was written).
    """
    pipeline = name or project_name(directory)
    files = _files(pipeline)
    taken = sorted(str(directory / rel) for rel in files if (directory / rel).exists())
    if taken:
        raise InputError(
            f"nbops init {directory}: {', '.join(taken)} already exist(s); nothing was written. "
            "Run it in a new or empty directory, or move those files aside."
        )
    written = []
    for rel, content in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        written.append(path)
    return Scaffold(directory, pipeline, tuple(written))


def _notebook(cells: list[tuple[str, str, list[str]]]) -> str:
    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, source, tags in cells:
        cell = (
            nbformat.v4.new_markdown_cell(source)  # type: ignore[no-untyped-call]
            if kind == "markdown"
            else nbformat.v4.new_code_cell(source)  # type: ignore[no-untyped-call]
        )
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    return str(nbformat.writes(nb))  # type: ignore[no-untyped-call]


def _files(name: str) -> dict[str, str]:
    prepare = _notebook(
        [
            ("markdown", "# Prepare\nWrites the rows the `train` stage reads.", []),
            (
                "code",
                "rows: int = 200  # how many rows to generate\nseed: int = 7  # random seed",
                [PARAMETERS],
            ),
            ("code", "import csv\nimport random\n\nimport nbops", []),
            (
                "code",
                "rng = random.Random(seed)\n"
                "data = [(x, 3.0 * x + rng.gauss(0, 1)) for x in (rng.uniform(0, 10) for _ in range(rows))]\n"
                "with open(nbops.output_dir() / 'rows.csv', 'w', newline='') as f:\n"
                "    csv.writer(f).writerows([('x', 'y'), *data])",
                [],
            ),
            ("code", "# Exploration only: never runs in a pipeline run.\ndata[:5]", ["skip"]),
            ("code", "row_count = len(data)", [METRICS]),
        ]
    )
    train = _notebook(
        [
            ("markdown", "# Train\nFits `y = slope * x` to the rows of `prepare` by least squares.", []),
            ("code", "min_rows: int = 10  # fail when fewer rows arrive", [PARAMETERS]),
            ("code", "import csv\nimport json\n\nimport nbops", []),
            (
                "code",
                "with open(nbops.input_dir('prepare') / 'rows.csv', newline='') as f:\n"
                "    rows = [(float(x), float(y)) for x, y in list(csv.reader(f))[1:]]\n"
                "assert len(rows) >= min_rows, f'only {len(rows)} rows'\n"
                "slope = sum(x * y for x, y in rows) / sum(x * x for x, _ in rows)\n"
                "(nbops.output_dir() / 'model.json').write_text(json.dumps({'slope': slope}))",
                [],
            ),
            ("code", "mse = sum((y - slope * x) ** 2 for x, y in rows) / len(rows)", [METRICS]),
        ]
    )
    return {
        "pipeline.yaml": PIPELINE.format(name=name, image=f"{name}-runner:0.1"),
        "notebooks/prepare.ipynb": prepare,
        "notebooks/train.ipynb": train,
        ".gitignore": GITIGNORE,
        "requirements.txt": REQUIREMENTS,
        "Dockerfile": DOCKERFILE.format(runner=RUNNER_IMAGE, image=f"{name}-runner:0.1"),
        "dags/README.md": DAGS_README,
    }


PIPELINE = """\
# The pipeline nbops runs (`nbops run`) and promotes to an Airflow DAG (`nbops promote`).
# Stage settings not given here take their defaults: see `nbops --help` and the nbops README.
name: {name}
description: Two stages scaffolded by nbops init; replace them with your own notebooks.
schedule: null            # a cron expression (e.g. "0 2 * * *") for Airflow; null = triggered by hand
image: {image}  # built from ./Dockerfile; stage pods run it
defaults:
  retries: 1
  timeout: 1800           # seconds for the whole stage
  cell_timeout: 600       # seconds for any one cell
stages:
  prepare:
    notebook: notebooks/prepare.ipynb
    parameters: {{rows: 500}}
  train:
    notebook: notebooks/train.ipynb
    needs: [prepare]
"""

GITIGNORE = """\
# nbops's local state: the MLflow database, stage attempts, artifacts, logs.
.nbops/
# Attempts reopened with nbops debug.
debug/
.ipynb_checkpoints/
__pycache__/
"""

REQUIREMENTS = """\
# The project's own libraries, installed into the runner image (./Dockerfile) with
# --require-hashes, so every stage pod runs exactly these versions. Keep it compiled with
# hashes, e.g. from a hand-written requirements.in:
#
#   uv pip compile requirements.in --generate-hashes --output-file requirements.txt
#
# Locally, install the same into the environment nbops runs in: pip install -r requirements.txt
"""

DOCKERFILE = """\
# syntax=docker/dockerfile:1
# The project's runner image: the nbops runner plus this project's own libraries.
#
#   docker build -t {image} .
#
# Hermetic: requirements.txt pins every library with its hash, nothing is resolved or
# downloaded at pod start. The image keeps the runner's non-root user (uid 10001) and works
# with the read-only root filesystem of stage pods: the libraries are byte-compiled here.
ARG NBOPS_RUNNER={runner}
FROM ${{NBOPS_RUNNER}}
USER root
COPY requirements.txt /tmp/project-requirements.txt
RUN if grep -qvE '^[[:space:]]*(#|$)' /tmp/project-requirements.txt; then \\
        /opt/nbops/bin/python -m pip install --no-cache-dir --no-deps --require-hashes \\
            -r /tmp/project-requirements.txt \\
        && /opt/nbops/bin/python -m compileall -q /opt/nbops; \\
    fi \\
    && rm /tmp/project-requirements.txt
USER 10001:10001
"""

DAGS_README = """\
`nbops promote` writes the Airflow DAG of `pipeline.yaml` here (`<name>.py` and its lock,
`<name>.lock.json`). Point Airflow's DAG folder at this directory; never edit these files:
change the pipeline or its notebooks and promote again.
"""
