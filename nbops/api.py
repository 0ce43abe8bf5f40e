"""The notebook API: the same calls interactively and inside a pipeline run.

In a run, the stage command exports the run's context (see :mod:`nbops.context`) and the
kernel inherits ``MLFLOW_RUN_ID``. In a directory made by ``nbops debug``, its pin file
(:data:`nbops.context.PIN_FILE`) stands for that context: inputs are the upstream attempts the
debugged attempt consumed, outputs go to a scratch directory inside it. Otherwise, interactively,
inputs come from the latest successful local run of the pipeline found above the working
directory, outputs go to a scratch directory that is never mistaken for a run, and logging goes
to an interactive MLflow run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from nbops.context import ENV_PIPELINE_FILE, StageContext, find_pin
from nbops.errors import InputError
from nbops.spec import Pipeline, load_pipeline
from nbops.storage import Store, layout, open_store
from nbops.storage.lineage import attempt_that_ran

PIPELINE_FILE = "pipeline.yaml"
_FLAVORS = {"sklearn": "sklearn", "xgboost": "xgboost", "lightgbm": "lightgbm", "torch": "pytorch"}


def input_dir(stage: str) -> Path:
    """Local directory holding the outputs of upstream stage ``stage``.

    Raises:
        InputError: the stage is not upstream of this one, or has never completed.
    """
    ctx = StageContext.current()
    if ctx is not None and stage in ctx.swept:
        raise InputError(_use_input_dirs(stage, len(ctx.swept[stage])))
    if ctx is not None:
        if stage not in ctx.inputs:
            known = ", ".join(sorted(ctx.inputs)) or "none"
            raise InputError(
                f"input_dir('{stage}'): '{stage}' is not a completed upstream stage of '{ctx.stage}' "
                f"in run {ctx.run_id} (available: {known}). Add it to 'needs' in the pipeline spec."
            )
        return ctx.inputs[stage]
    pipeline = _interactive_pipeline()
    if pipeline.stage(stage).swept:
        raise InputError(_use_input_dirs(stage, None))
    store = open_store(pipeline.root)
    done = store.latest_completed(pipeline.name, stage)
    if done is None:
        raise InputError(
            f"input_dir('{stage}'): no completed run of stage '{stage}' under {store.url}; "
            f"run it once with: nbops run {pipeline.path} --stage {stage}"
        )
    return _ran(store, pipeline.name, stage, done) / "outputs"


def input_dirs(stage: str) -> list[tuple[dict[str, Any], Path]]:
    """Of a swept upstream stage (``grid``, ``foreach``, ``foreach_from``): each point's parameters and
    the local directory of its outputs, in point order. Interactively: the points of the latest run
    in which every point of the stage completed.

    Raises:
        InputError: the stage is not swept (use :func:`input_dir`), not upstream of this one, or no
            run has completed it.
    """
    ctx = StageContext.current()
    if ctx is not None:
        if stage in ctx.swept:
            return list(ctx.swept[stage])
        hint = " It is not swept: use nbops.input_dir." if stage in ctx.inputs else " Add it to 'needs' in the spec."
        known = ", ".join(sorted(ctx.swept)) or "none"
        raise InputError(
            f"input_dirs('{stage}'): '{stage}' is not a swept upstream stage of '{ctx.stage}' in run {ctx.run_id} "
            f"(swept upstream stages: {known}).{hint}"
        )
    from nbops.storage.points import swept_outputs

    pipeline = _interactive_pipeline()
    if not pipeline.stage(stage).swept:
        raise InputError(f"input_dirs('{stage}'): stage '{stage}' is not swept; use nbops.input_dir('{stage}').")
    store = open_store(pipeline.root)
    found = swept_outputs(store, pipeline, stage)
    if found is None:
        raise InputError(
            f"input_dirs('{stage}'): no run under {store.url} completed every point of stage '{stage}'; "
            f"run it once with: nbops run {pipeline.path} --stage {stage}"
        )
    return found


def _use_input_dirs(stage: str, points: int | None) -> str:
    count = f" over {points} points" if points is not None else ""
    return (
        f"input_dir('{stage}'): stage '{stage}' is swept{count} (grid, foreach or foreach_from), so it has one "
        f"output directory per point; use nbops.input_dirs('{stage}'), which gives (parameters, path) pairs in "
        "point order."
    )


def _ran(store: Store, pipeline: str, stage: str, done: Path) -> Path:
    """The attempt that ran: ``done`` itself, or for a ``cached`` attempt the attempt it reused, as a
    pipeline stage reads it (:func:`nbops.storage.lineage.attempt_that_ran`)."""
    return attempt_that_ran(store, pipeline, stage, done)[0]


def output_dir() -> Path:
    """Directory where this stage writes its output files (hashed into the manifest)."""
    ctx = StageContext.current()
    if ctx is not None:
        return ctx.output_dir
    pipeline = _interactive_pipeline()
    scratch = layout.state_dir(pipeline.root) / "scratch" / "outputs"
    scratch.mkdir(parents=True, exist_ok=True)
    return scratch


def log_metric(name: str, value: float, step: int | None = None) -> None:
    """Log a metric on the stage's MLflow run (an interactive run outside pipelines)."""
    from mlflow import MlflowClient

    MlflowClient().log_metric(_active_run_id(), name, float(value), step=step or 0)


def log_model(model: Any, name: str = "model", registered_model_name: str | None = None, **kwargs: Any) -> Any:
    """Log ``model`` with the MLflow flavor of its library; in a pipeline run, register a version.

    A version registered in a pipeline run is tagged back to its pipeline run, stage run,
    notebook, lock and commit when the stage is recorded. Outside a pipeline run (running
    the notebook in Jupyter) the model is logged to the interactive run but never registered,
    so nothing without a lineage reaches the production model's versions; the message says
    how to register it deliberately.

    Returns MLflow's ``ModelInfo`` (``registered_model_version`` is set when registered).
    """
    import importlib

    import mlflow

    top = type(model).__module__.split(".")[0]
    flavor = _FLAVORS.get(top)
    if flavor is None:
        raise InputError(
            f"log_model: no MLflow flavor known for objects of {type(model).__module__}; "
            f"supported: {', '.join(sorted(_FLAVORS))}. Use mlflow.<flavor>.log_model directly."
        )
    run_id = _active_run_id()
    active = mlflow.active_run()
    if active is None or active.info.run_id != run_id:
        mlflow.start_run(run_id=run_id)
    module = importlib.import_module(f"mlflow.{flavor}")
    in_pipeline = StageContext.from_env() is not None
    if not {"pip_requirements", "extra_pip_requirements", "conda_env"} & set(kwargs):
        from nbops.requirements import pinned_requirements

        found = pinned_requirements(model, also=_flavor_requirements(module, flavor, kwargs))
        if found is not None:  # else MLflow infers them, as it would without nbops
            kwargs["pip_requirements"] = found
    info = module.log_model(
        model, name=name, registered_model_name=registered_model_name if in_pipeline else None, **kwargs
    )
    if registered_model_name and not in_pipeline:
        print(  # noqa: T201 - the notebook's own output is where the data scientist looks
            f"nbops: model logged to interactive run {run_id} but NOT registered as '{registered_model_name}': "
            "only pipeline runs register production versions (nbops run, or the promoted DAG). To register this "
            f"one deliberately: mlflow.register_model('{info.model_uri}', '{registered_model_name}')"
        )
    return info


def _flavor_requirements(module: Any, flavor: str, kwargs: dict[str, Any]) -> list[str]:
    """The distributions the MLflow flavor itself needs to save and load a model (e.g. ``skops``)."""
    if flavor == "sklearn":
        fmt = kwargs.get("serialization_format") or module._get_default_serialization_format()
        pinned = module.get_default_pip_requirements(
            include_cloudpickle=fmt == module.SERIALIZATION_FORMAT_CLOUDPICKLE,
            include_skops=fmt == module.SERIALIZATION_FORMAT_SKOPS,
        )
    else:
        pinned = module.get_default_pip_requirements()
    return [re.split(r"[<>=!~;\[ ]", str(r), maxsplit=1)[0] for r in pinned]


def _active_run_id() -> str:
    run_id = os.environ.get("MLFLOW_RUN_ID", "")
    if run_id:
        return run_id
    import mlflow

    from nbops.tracking.store import tracking_uri

    pipeline = _interactive_pipeline()
    mlflow.set_tracking_uri(tracking_uri(layout.state_dir(pipeline.root)))
    mlflow.set_experiment(f"{pipeline.name}-interactive")
    from nbops.tracking import tags

    run = mlflow.active_run() or mlflow.start_run(tags={tags.KIND: "interactive", tags.PIPELINE: pipeline.name})
    os.environ["MLFLOW_RUN_ID"] = run.info.run_id
    return str(run.info.run_id)


def find_pipeline_file() -> Path | None:
    """``$NBOPS_PIPELINE_FILE``, else the one a ``nbops debug`` pin names, else the nearest
    ``pipeline.yaml`` in the working directory or a parent."""
    named = os.environ.get(ENV_PIPELINE_FILE, "").strip()
    if named:
        return Path(named)
    pinned = pinned_pipeline_file()
    if pinned is not None:
        return pinned
    here = Path.cwd().resolve()
    return next((d / PIPELINE_FILE for d in (here, *here.parents) if (d / PIPELINE_FILE).is_file()), None)


def pinned_pipeline_file() -> Path | None:
    """The pipeline file named by the ``nbops debug`` pin above the working directory, if any."""
    import json

    pin = find_pin()
    if pin is None:
        return None
    try:
        named = json.loads(pin.read_text(encoding="utf-8")).get("pipeline_file")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(named) if isinstance(named, str) and named else None


def resolve_pipeline_file(path: Path) -> Path:
    """``path``; but the default relative ``pipeline.yaml``, when the working directory has none, is
    the one :func:`find_pipeline_file` finds (the commands find their pipeline as notebooks do)."""
    if path == Path(PIPELINE_FILE) and not path.is_file():
        return find_pipeline_file() or path
    return path


def _interactive_pipeline() -> Pipeline:
    """The pipeline whose file is named by ``$NBOPS_PIPELINE_FILE`` or found above the cwd."""
    found = find_pipeline_file()
    if found is None:
        raise InputError(
            f"no {PIPELINE_FILE} found in {Path.cwd().resolve()} or its parents; "
            f"set {ENV_PIPELINE_FILE} to the pipeline file."
        )
    return load_pipeline(found)
