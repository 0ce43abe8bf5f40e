"""The ``nbops`` command line: parse, build a request, call one library function, map errors.

Each command makes one call into the module that owns its work and prints what it returns;
the text and the exit code come from there. Exit codes (``nbops.status.ExitCode``): 0 success,
1 the notebook's own code failed, 2 bad input found before execution, 3 infrastructure failure
or a signal, 4 an audit found a mismatch, 99 nothing to do (Airflow skips the task).

| module       | commands                                                              |
|--------------|-----------------------------------------------------------------------|
| `pipeline`   | init, lint, run, test, promote, and the DAG's exec-stage and close-run |
| `retraining` | gate, approve, monitor, and the monitor DAG's drift-check             |
| `models`     | audit, serve, ui                                                      |
| `attempts`   | logs, debug: one stage attempt's cells, reopened for debugging         |
| `diff`       | diff: two runs compared stage by stage                                |
| `base`       | the pipeline file argument, error and exit handling                   |
"""

from __future__ import annotations

import click

from nbops.cli import attempts, diff, models, pipeline, retraining
from nbops.cli.base import PROCESS
from nbops.cli.pipeline import exec_stage_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nbops")
def main() -> None:
    """Take tagged Jupyter notebooks to production."""


for _command in (*pipeline.COMMANDS, *retraining.COMMANDS, *models.COMMANDS, *attempts.COMMANDS, *diff.COMMANDS):
    main.add_command(_command)


def entry() -> None:
    """The ``nbops`` executable and ``python -m nbops``."""
    PROCESS["entry"] = True
    main()


__all__ = ["entry", "exec_stage_cmd", "main"]
