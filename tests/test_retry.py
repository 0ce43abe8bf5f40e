"""Named retry policies: their bounds, what they retry, and the waits they really take."""

from __future__ import annotations

import dataclasses
import itertools
import time

import pytest

from nbops.retry import ARTIFACT_STORE, ENV_RETRY_SCALE, SQLITE_LOCK, TRACKING_RECORD, RetryPolicy

pytestmark = pytest.mark.unit

INSTANT = RetryPolicy("instant", 4, 0, 0)


class Flaky:
    """Fails with ``error`` the first ``failures`` calls, then returns ``"done"``; notes call times."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.failures = failures
        self.error = error or OSError("transient")
        self.times: list[float] = []

    def __call__(self) -> str:
        self.times.append(time.monotonic())
        if len(self.times) <= self.failures:
            raise self.error
        return "done"

    def gaps(self) -> list[float]:
        return [b - a for a, b in itertools.pairwise(self.times)]


def is_os_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError)


def test_the_named_policies_have_the_documented_bounds() -> None:
    assert (ARTIFACT_STORE.attempts, ARTIFACT_STORE.waits()) == (5, [1, 2, 4, 8])  # DESIGN section 5
    assert (TRACKING_RECORD.attempts, TRACKING_RECORD.waits()) == (4, [2, 4, 8])
    assert SQLITE_LOCK.attempts == 10
    assert SQLITE_LOCK.waits() == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5, 5, 5, 5])
    assert len({ARTIFACT_STORE.name, TRACKING_RECORD.name, SQLITE_LOCK.name}) == 3


def test_a_transient_failure_is_retried_until_it_passes() -> None:
    flaky = Flaky(failures=3)
    assert INSTANT.call(flaky, retry_on=is_os_error) == "done"
    assert len(flaky.times) == 4


def test_the_last_error_propagates_once_the_attempts_are_spent() -> None:
    error = OSError("still down")
    flaky = Flaky(failures=99, error=error)
    with pytest.raises(OSError) as caught:
        INSTANT.call(flaky, retry_on=is_os_error)
    assert caught.value is error
    assert len(flaky.times) == INSTANT.attempts


@pytest.mark.parametrize("error", [ValueError("a bug"), KeyboardInterrupt()], ids=["bug", "ctrl-c"])
def test_an_error_the_policy_does_not_retry_propagates_at_once(error: BaseException) -> None:
    flaky = Flaky(failures=1, error=error)
    with pytest.raises(type(error)):
        INSTANT.call(flaky, retry_on=is_os_error)
    assert len(flaky.times) == 1


def test_the_waits_are_really_taken_and_capped() -> None:
    policy = RetryPolicy("short", 4, first_wait=0.05, max_wait=0.12)
    assert policy.waits() == pytest.approx([0.05, 0.1, 0.12])
    flaky = Flaky(failures=3)
    assert policy.call(flaky, retry_on=is_os_error) == "done"
    gaps = flaky.gaps()
    assert gaps[0] >= 0.045 and gaps[1] >= 0.095 and gaps[2] >= 0.115
    assert gaps[2] < 0.5  # capped at max_wait, not 0.2


def test_a_shorter_copy_keeps_the_attempts() -> None:
    quick = dataclasses.replace(ARTIFACT_STORE, first_wait=0.0, max_wait=0.0)
    flaky = Flaky(failures=99)
    started = time.monotonic()
    with pytest.raises(OSError):
        quick.call(flaky, retry_on=is_os_error)
    assert len(flaky.times) == ARTIFACT_STORE.attempts
    assert time.monotonic() - started < 1


def test_the_environment_scales_every_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = RetryPolicy("scaled", 2, first_wait=0.05, max_wait=0.05)
    monkeypatch.setenv(ENV_RETRY_SCALE, "3")
    flaky = Flaky(failures=1)
    policy.call(flaky, retry_on=is_os_error)
    assert flaky.gaps()[0] >= 0.145
    monkeypatch.setenv(ENV_RETRY_SCALE, "0")
    flaky = Flaky(failures=99)
    started = time.monotonic()
    with pytest.raises(OSError):
        ARTIFACT_STORE.call(flaky, retry_on=is_os_error)
    assert len(flaky.times) == 5 and time.monotonic() - started < 1


@pytest.mark.parametrize("value", ["fast", "-1", "nan"])
def test_a_bad_scale_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ENV_RETRY_SCALE, value)
    flaky = Flaky(failures=0)
    with pytest.raises(ValueError, match=f"{ENV_RETRY_SCALE}={value}"):
        INSTANT.call(flaky, retry_on=is_os_error)
    assert flaky.times == []  # refused before the first call


@pytest.mark.parametrize(
    ("attempts", "first", "most", "multiplier", "problem"),
    [(0, 1, 1, 2, "attempts"), (3, 2, 1, 2, "first_wait"), (3, -1, 1, 2, "first_wait"), (3, 1, 2, 0.5, "multiplier")],
)
def test_an_impossible_policy_is_refused(
    attempts: int, first: float, most: float, multiplier: float, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        RetryPolicy("bad", attempts, first, most, multiplier)
