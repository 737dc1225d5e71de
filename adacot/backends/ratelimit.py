"""Client-side rate limits and retry delays for the HTTP backend (adacot.backends.openai_http).

Token buckets for requests-per-minute and tokens-per-minute, and the backoff policy (exponential with
full jitter, honouring a server's Retry-After). The clock and the sleep are injectable so the policy is
unit-tested with a fake clock instead of real waiting.

Limits: the buckets are per process (each shard of a sharded stage has its own budget: divide the
provider's quota by `shards` in the spec). A request larger than a bucket's capacity waits until the
bucket is full and then drives it into debt, so one huge request is never starved.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """`per_minute` units per minute, up to one minute's worth stored; the level may go negative (debt)
    when a charge is corrected upwards after the fact."""

    def __init__(self, per_minute: float, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep):
        if per_minute <= 0:
            raise ValueError("a rate limit must be positive")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self._clock, self._sleep = clock, sleep
        self._updated = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._updated) * self.rate)
        self._updated = now

    def wait_time(self, amount: float) -> float:
        """Seconds until `amount` (capped at the capacity) is available."""
        self._refill()
        missing = min(amount, self.capacity) - self.level
        return max(0.0, missing / self.rate)

    async def acquire(self, amount: float) -> None:
        """Wait until `amount` is available, then take it. Callers are served first come, first served."""
        async with self._lock:
            while (delay := self.wait_time(amount)) > 0:
                await self._sleep(delay)
            self.level -= amount

    def correct(self, delta: float) -> None:
        """Charge `delta` more (or refund it, when negative) once the real cost is known."""
        self._refill()
        self.level = min(self.capacity, self.level - delta)


@dataclass
class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits together; either may be off (None)."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    clock: Clock = time.monotonic
    sleep: Sleep = asyncio.sleep
    _requests: TokenBucket | None = field(init=False, default=None)
    _tokens: TokenBucket | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.requests_per_minute:
            self._requests = TokenBucket(self.requests_per_minute, clock=self.clock, sleep=self.sleep)
        if self.tokens_per_minute:
            self._tokens = TokenBucket(self.tokens_per_minute, clock=self.clock, sleep=self.sleep)

    async def acquire(self, estimated_tokens: int) -> None:
        if self._requests is not None:
            await self._requests.acquire(1)
        if self._tokens is not None:
            await self._tokens.acquire(estimated_tokens)

    def correct_tokens(self, estimated: int, actual: int) -> None:
        """Replace the estimate charged before a request by the usage the server reported."""
        if self._tokens is not None:
            self._tokens.correct(actual - estimated)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt k waits uniform(0, min(cap, base * 2**k)) seconds,
    or at least the server's Retry-After when it sent one."""

    base_s: float = 1.0
    cap_s: float = 60.0

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        jittered = rng.uniform(0.0, min(self.cap_s, self.base_s * 2.0**attempt))
        if retry_after is None:
            return jittered
        # Never earlier than the server asked; a little jitter on top spreads a crowd of clients.
        return retry_after + min(jittered, self.base_s)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds (fractions accepted) or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    reference = time.time() if now is None else now
    return max(0.0, when.timestamp() - reference)
