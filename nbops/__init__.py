"""nbops: tagged Jupyter notebooks to production.

Inside a notebook, ``import nbops`` gives the notebook API; it is cheap to import
(MLflow is loaded only when something is logged). The API is loaded on first use, so
that importing a submodule (``nbops.airflow`` when Airflow parses a DAG file) does not
pay for it.

Where things live (imports point down this list; the import contracts in pyproject.toml hold it).
Slots: "attempt:" and "run:" name where a concern plugs in (declared once, stage/slots.py).

    cli/                        the commands, one library call each
    testrun.py                  nbops test
    monitor.py promote.py serve.py
    runs.py                     nbops run with nbops's slots filled
    runner/local.py             the local runner: schedules attempts, reads outcomes; plan.py
                                (what to run), state.py, record.py (parent run), report.py,
                                live.py (each running stage's cell, read from its log)
    airflow/                    DAGs (dag.py), pods (pod.py), the stage operator (operator.py)
    audit/                      nbops audit
    attempts/                   nbops logs, debug: one attempt looked back at on either store (find.py),
                                its cells as text (text.py), reopened pinned to its inputs (debug.py)
    plugins/                    slot implementations and their composition (__init__.py):
      reuse.py                  reuse of a completed attempt   attempt: reuse_key, before_claim,
                                (key and index: stage/cache.py)         after_seal
      champion.py               the monitor's inputs           attempt: upstream
      gate.py                   the registry gate              run: stage_done
                                (retrain.py; the pure rule: tracking/decision.py)
      alerting.py               the failure alert (alerts.py)  run: run_ended
      sweeps.py                 the sweeps' leaderboards       run: run_ended
                                (tracking/leaderboard.py)
    sweep.py                    a swept stage's points: ids, labels, grid and list; storage/points.py
                                (foreach_from lists, completed points), runner/units.py (scheduled)
    stage/command.py            one stage attempt: the driver that chains the phases
    stage/lifecycle.py          the phases, a record in and a record out (records: stage/phases.py)
    stage/attempt_record.py     what an attempt writes about itself: tags, manifest
    stage/carried.py            the helper files it ran with, stored by content (load.py: the
                                pipeline from the work tree or the promoted lock)
    modelseal.py                registered model versions sealed: files hashed, signed (OpenSSF
                                model-signing), checked again by audit/ and serve.py
    stage/result.py             the stage command line (StageRequest.to_argv / from_argv), results
    notebook/execute.py         executing a notebook: Papermill, kernel (engine.py), outcome
    notebook/progress.py        a running notebook's cell events and their lines in the stage log;
                                stage/checkpoint.py: the partial notebook copied to the store
    context.py                  the kernel's environment variables (StageContext.to_env; set in
                                stage/lifecycle.py:claim)
    notebook/parameters.py      the parameters contract; overrides.py: -p values; tags.py: cell tags
    tracking/                   MLflow: reads (query.py), writes (record.py), tag names (tags.py),
                                the parent run (pipeline_run.py), who ran it (who.py), a new
                                store from a template (template.py), the record of an unchanged
                                re-run without MLflow (sqlite_client.py)
    storage/                    the artifact store, attempts, manifests
    spec/                       the pipeline spec and its messages
    status.py                   outcomes: exit codes, stage status, runner state, pipeline outcome
    errors.py                   the exception root

Two walks: ``nbops run`` to the first cell is ``runner/local.py`` (``_spawn`` starts the stage
command) -> ``stage/command.py`` (``exec_stage`` chains the phases) -> ``stage/lifecycle.py``
(``run`` calls ``notebook.execute``). A failing cell to its MLflow tag is
``notebook/engine.py`` (``_cell_stopped`` fills the outcome) -> ``stage/attempt_record.py``
(``outcome_tags``) -> ``tracking/tags.py`` (``FAILED_CELL``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "input_dir", "input_dirs", "log_metric", "log_model", "output_dir"]

if TYPE_CHECKING:
    from nbops.api import input_dir, input_dirs, log_metric, log_model, output_dir


def __getattr__(name: str) -> Any:
    if name in __all__:
        from nbops import api

        return getattr(api, name)
    raise AttributeError(f"module 'nbops' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The notebook API, so that completion (``nbops.<Tab>`` in Jupyter) offers it and nothing else."""
    return list(__all__)
