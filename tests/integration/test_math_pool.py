"""MathVerifier and its time-bounded pool with real spawned worker processes.

Bounds are enforced with pytest-timeout (no elapsed-time assertions): a hang fails the test.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import adacot.verify.math as math_verifier
from adacot.artifacts.rows import Verdict
from adacot.verify.math import MathVerifier
from adacot.verify.pool import TimeBoundedPool

pytestmark = pytest.mark.integration

TOWER = r"The answer is \boxed{9^{9^{9^{9^{9}}}}}."
GOOD = [
    (r"</think> \boxed{\frac{1}{2}}", "0.5"),
    (r"The answer is \boxed{(3,4]}", "(3,4]"),
    ("So she makes 18 dollars.\n#### 18", "Janet...\n#### 18"),
    (r"\boxed{4}", "3"),
]
EXPECTED_GOOD = [True, True, True, False]


@pytest.mark.timeout(120)
def test_tower_times_out_while_other_calls_succeed_and_pool_keeps_working() -> None:
    pairs = [GOOD[0], (TOWER, "5"), *GOOD[1:], (TOWER, "5"), *GOOD]
    with MathVerifier(workers=2, timeout_s=3.0) as verifier:
        verdicts = list(verifier.verify_many(pairs))
        after = verifier.verify(r"\boxed{\dfrac{3}{2}}", "1.5")
    assert [v.reason for v in verdicts if v.correct is None] == ["timeout", "timeout"]
    assert verdicts[1].extracted == "9^{9^{9^{9^{9}}}}"
    assert [v.correct for v in verdicts if v.correct is not None] == EXPECTED_GOOD * 2
    assert after.correct is True


@pytest.mark.timeout(120)
def test_hard_kill_bounds_a_call_the_soft_deadline_misses(monkeypatch: pytest.MonkeyPatch) -> None:
    # Push the in-worker SIGALRM deadline far past the bound, as for a call stuck in C code where no
    # signal handler can run: only the pool's kill can end it, and a fresh worker takes its place.
    monkeypatch.setattr(math_verifier, "_SOFT_SHARE", 100.0)
    with MathVerifier(workers=1, timeout_s=2.0) as verifier:
        stuck = verifier.verify(TOWER, "5")
        after = [verifier.verify(*pair) for pair in GOOD]
    assert (stuck.correct, stuck.reason) == (None, "timeout")
    assert stuck.detail is not None and "killed" in stuck.detail
    assert [v.correct for v in after] == EXPECTED_GOOD


@pytest.mark.timeout(180)
def test_a_killed_batch_is_checked_again_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # The stuck check shares a batch with good ones; when the pool kills the batch, only the stuck
    # check may end as a timeout: the others are re-checked individually and keep their verdicts.
    monkeypatch.setattr(math_verifier, "_SOFT_SHARE", 100.0)
    pairs = [GOOD[0], (TOWER, "5"), *GOOD[1:]]
    with MathVerifier(workers=1, timeout_s=1.0, batch_size=len(pairs)) as verifier:
        verdicts = list(verifier.verify_many(pairs))
    assert [v.reason for v in verdicts if v.correct is None] == ["timeout"]
    assert verdicts[1].reason == "timeout" and "killed" in (verdicts[1].detail or "")
    assert [v.correct for v in verdicts if v.correct is not None] == EXPECTED_GOOD


@pytest.mark.timeout(120)
def test_verify_many_preserves_order_and_streams_with_bounded_in_flight() -> None:
    pulled = 0

    def pairs() -> Iterator[tuple[str, str]]:
        nonlocal pulled
        for i in range(40):
            pulled += 1
            yield (rf"\boxed{{{i}}}", str(i if i % 3 else i + 1))

    with MathVerifier(workers=2, timeout_s=10.0) as verifier:
        stream = verifier.verify_many(pairs())
        first = next(stream)
        pulled_at_first = pulled
        rest = list(stream)
    verdicts = [first, *rest]
    assert [v.extracted for v in verdicts] == [str(i) for i in range(40)]
    assert [v.correct for v in verdicts] == [bool(i % 3) for i in range(40)]
    # The window (2 x workers batches of 8), not the whole input, was read before the first result.
    assert pulled_at_first <= 2 * 2 * 8 < 40


# --- the pool itself, with functions defined here (spawned workers import this module) ---

MARKER: str | None = None  # set in the parent only; a forked worker would inherit it, a spawned one not


def _echo(x: int) -> int:
    return x * 2


def _spin_with_signals_blocked(x: int) -> int:
    import signal

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGINT})
    while True:
        x += 1


def _die(x: int) -> int:
    os._exit(3)


def _raise(x: int) -> int:
    raise ValueError(f"bad input {x}")


def _marker(x: int) -> str | None:
    return getattr(sys.modules[__name__], "MARKER", None)


def _pool(fn: Any, timeout_s: float = 2.0) -> TimeBoundedPool[object]:
    return TimeBoundedPool(
        fn,
        workers=2,
        timeout_s=timeout_s,
        on_timeout=lambda args: ("timeout", args),
        on_failure=lambda args, exc: ("failed", args, type(exc).__name__),
    )


@pytest.mark.timeout(120)
def test_pool_kills_stuck_worker_and_replaces_it() -> None:
    spin = _pool(_spin_with_signals_blocked)
    try:
        assert spin.run(1) == ("timeout", (1,))
        assert list(spin.run_many([(1,), (2,)])) == [("timeout", (1,)), ("timeout", (2,))]
    finally:
        spin.terminate()
    echo = _pool(_echo)
    try:
        assert list(echo.run_many((i,) for i in range(10))) == [i * 2 for i in range(10)]
    finally:
        echo.close()


@pytest.mark.timeout(120)
def test_pool_turns_crashes_and_exceptions_into_results() -> None:
    pool = _pool(_die)
    try:
        assert pool.run(1) == ("failed", (1,), "ProcessExpired")
    finally:
        pool.close()
    pool = _pool(_raise)
    try:
        assert pool.run(7) == ("failed", (7,), "ValueError")
    finally:
        pool.close()


@pytest.mark.timeout(120)
def test_pool_workers_are_spawned_not_forked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "MARKER", "parent-only")
    pool = _pool(_marker)
    try:
        assert pool.run(0) is None
    finally:
        pool.close()


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="workers"):
        MathVerifier(workers=0)
    with pytest.raises(ValueError, match="timeout_s"):
        MathVerifier(timeout_s=0)


def test_verdict_type() -> None:
    with MathVerifier() as verifier:
        assert isinstance(verifier.verify(r"\boxed{2}", "2"), Verdict)
