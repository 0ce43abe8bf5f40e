"""Checkpoints of a running attempt: its partial notebook copied to the store as it is saved.

A remote store gets the notebook while it runs, so ``nbops logs --follow`` can show a stage
running in a pod; a local store is where the notebook is written already (a no-op). How often
is the notebook's to decide (:data:`nbops.notebook.execute.CHECKPOINT_SECONDS`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbops.storage import Store
    from nbops.storage.base import Attempt

NOTEBOOK = "output.ipynb"


def checkpoints(store: Store, attempt: Attempt, log: Callable[[str], None]) -> Callable[[], None]:
    """A callable that copies the attempt's partial notebook to ``store``.

    A failure is logged and ends the checkpoints of this attempt (each would hold the notebook
    up for the store's retries); it never fails the stage, whose final notebook is uploaded
    with the attempt.
    """
    failed = False

    def checkpoint() -> None:
        nonlocal failed
        if failed:
            return
        try:
            store.checkpoint(attempt, NOTEBOOK)
        except Exception as exc:  # never fails the stage
            failed = True
            log(f"the partial notebook was not checkpointed ({exc}); no more checkpoints for this attempt")

    return checkpoint
