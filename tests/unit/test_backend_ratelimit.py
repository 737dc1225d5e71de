"""Rate limits and retry delays of the HTTP backend, on a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio
import random

import pytest

from adacot.api.common import SecretRef
from adacot.backends.ratelimit import Backoff, RateLimiter, TokenBucket, parse_retry_after


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_requests_per_minute_spreads_requests_after_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=60, clock=clock, sleep=clock.sleep)

    async def go() -> list[float]:
        times = []
        for _ in range(63):
            await limiter.acquire(estimated_tokens=0)
            times.append(clock.now)
        return times

    times = asyncio.run(go())
    assert times[:60] == [0.0] * 60  # a full minute's burst is allowed at once
    assert times[60:] == pytest.approx([1.0, 2.0, 3.0])  # then one a second


def test_token_bucket_debt_from_usage_correction_delays_the_next_request() -> None:
    clock = FakeClock()
    bucket = TokenBucket(600, clock=clock, sleep=clock.sleep)  # 10 tokens a second
    asyncio.run(bucket.acquire(100))
    bucket.correct(600)  # the server reported 600 more tokens than estimated: level -100
    assert bucket.level == pytest.approx(-100)
    asyncio.run(bucket.acquire(50))
    assert clock.now == pytest.approx(15.0)  # (100 debt + 50) / 10 per second


def test_a_request_larger_than_the_bucket_waits_for_a_full_bucket_only() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100, clock=clock, sleep=clock.sleep)
    asyncio.run(bucket.acquire(100))
    asyncio.run(bucket.acquire(10_000))
    assert clock.now == pytest.approx(60.0)
    assert bucket.level == pytest.approx(100 - 10_000)


@pytest.mark.parametrize(
    ("attempt", "retry_after", "low", "high"),
    [(0, None, 0.0, 1.0), (3, None, 0.0, 8.0), (10, None, 0.0, 60.0), (0, 5.0, 5.0, 6.0), (6, 2.0, 2.0, 3.0)],
)
def test_backoff_is_full_jitter_and_never_before_retry_after(
    attempt: int, retry_after: float | None, low: float, high: float
) -> None:
    rng = random.Random(1)
    delays = [Backoff(1.0, 60.0).delay(attempt, rng, retry_after) for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    assert max(delays) - min(delays) > (high - low) / 4  # jitter actually spreads the delays


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), (" 1.5 ", 1.5), ("-2", 0.0), ("", None), (None, None), ("soon", None),
     ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0)],
)  # fmt: skip
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    now = 1445412480.0  # 2015-10-21 07:28:00 GMT
    assert parse_retry_after(header, now=now) == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize(
    ("name", "key", "variable"),
    [("teacher-api", "api-key", "ADACOT_SECRET_TEACHER_API_API_KEY"),
     ("hf.token", "TOKEN", "ADACOT_SECRET_HF_TOKEN_TOKEN"), ("a", "b/c", "ADACOT_SECRET_A_B_C")],
)  # fmt: skip
def test_secret_env_var(name: str, key: str, variable: str) -> None:
    assert SecretRef(name=name, key=key).env_var == variable
