"""Named retry policies: one per kind of resource, so every bound is known and written once.

Only nbops retries (client libraries' own retries are turned off where they have any), so
a policy's ``attempts`` and ``waits()`` are the whole story of how long a failing call can
take (DESIGN §5). tenacity does the looping; it is imported on first use, because this
module sits at the bottom of the layers and the DAG factory must stay cheap to import.

``NBOPS_RETRY_SCALE`` (a factor, default 1) multiplies every wait when a call is made, so
that tests can exercise a policy without sleeping through its real waits; nothing in
production sets it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

ENV_RETRY_SCALE = "NBOPS_RETRY_SCALE"


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``attempts`` calls; after failure ``n`` (from 1), wait
    ``min(first_wait * multiplier ** (n - 1), max_wait)`` seconds."""

    name: str
    attempts: int
    first_wait: float
    max_wait: float
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"retry policy '{self.name}': attempts must be at least 1, not {self.attempts}")
        if not 0 <= self.first_wait <= self.max_wait:
            raise ValueError(f"retry policy '{self.name}': need 0 <= first_wait <= max_wait")
        if self.multiplier < 1:
            raise ValueError(f"retry policy '{self.name}': multiplier must be at least 1, not {self.multiplier}")

    def waits(self) -> list[float]:
        """The waits between attempts in seconds, before any ``NBOPS_RETRY_SCALE``."""
        return [min(self.first_wait * self.multiplier**n, self.max_wait) for n in range(self.attempts - 1)]

    def call(self, fn: Callable[[], T], retry_on: Callable[[BaseException], bool]) -> T:
        """``fn()``, called again after each failure that ``retry_on`` accepts, until it returns
        or the attempts are spent. The last exception propagates unchanged, as does any
        exception ``retry_on`` refuses (a bug, Ctrl-C)."""
        from tenacity import Retrying, retry_if_exception, stop_after_attempt

        waits = [w * retry_scale() for w in self.waits()]

        def wait(state: Any) -> float:
            failed: int = state.attempt_number  # the attempt that just failed, from 1
            return waits[min(failed, len(waits)) - 1]

        for attempt in Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait,
            retry=retry_if_exception(retry_on),
            reraise=True,
        ):
            with attempt:
                return fn()
        raise AssertionError("unreachable")  # pragma: no cover - Retrying either returns or raises


def retry_scale() -> float:
    """The factor ``NBOPS_RETRY_SCALE`` applies to every wait (1 when unset).

    Raises:
        ValueError: the variable is set to something other than a non-negative number.
    """
    text = os.environ.get(ENV_RETRY_SCALE, "").strip()
    if not text:
        return 1.0
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses nan
        raise ValueError(f"{ENV_RETRY_SCALE}={text}: expected a non-negative number (1 = the real waits).")
    return value


ARTIFACT_STORE = RetryPolicy("artifact store", 5, 1, 8)
"""Reads and writes of the artifact store: waits 1, 2, 4, 8 s (DESIGN §5)."""

TRACKING_RECORD = RetryPolicy("tracking record", 4, 2, 8)
"""Writing a stage's record to MLflow as a whole: waits 2, 4, 8 s."""

SQLITE_LOCK = RetryPolicy("sqlite lock", 10, 0.2, 5)
"""One MLflow call against an embedded sqlite store that another process holds locked."""
