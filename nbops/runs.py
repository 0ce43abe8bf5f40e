"""``nbops run`` as the commands call it: the local runner with the slots nbops ships."""

from __future__ import annotations

from nbops.plugins import run_hooks
from nbops.runner.local import run_pipeline
from nbops.runner.plan import RunOptions
from nbops.runner.state import RunSummary


def run(options: RunOptions) -> RunSummary:
    """Run a pipeline locally: the gate after its stage and the failure alert (unless
    ``options.alerts`` is false) in the run's slots, reuse and the monitor's inputs in each attempt's.

    Raises:
        InputError: the spec, a notebook or an override is wrong (nothing was started).
        InfraError: the tracking store or artifact store cannot be opened.
    """
    return run_pipeline(options, run_hooks(alerts=options.alerts))


__all__ = ["RunOptions", "RunSummary", "run"]
