"""Client-side request and token rate limits (``--rpm``, ``--tpm``) as token buckets.

A provider's limits are per minute, but spending a whole minute's allowance in
the first second is what triggers 429s, so each bucket holds about one
second's worth and refills continuously.

Token usage is only known after a request, so an article first takes an
estimate and settles the difference afterwards (the bucket may go negative,
which makes the next articles wait). Re-asks and transport retries happen
inside the extractor, so they are charged afterwards too: the long-run rate
stays within the limits even though single retries are not individually gated.

Home-made on purpose: the limiter libraries we know (aiolimiter, limits, pyrate-limiter) take
units before the work and cannot settle an estimate afterwards, which a token limit needs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """Holds up to ``capacity`` units, refilled at ``rate_per_s``; ``take`` waits until enough is there."""

    def __init__(
        self,
        rate_per_s: float,
        capacity: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate_per_s <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._level = capacity
        self._updated = clock()
        # Waiters queue on the lock, so they are served in arrival order.
        self._lock = asyncio.Lock()

    @property
    def level(self) -> float:
        self._refill()
        return self._level

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._updated) * self.rate_per_s)
        self._updated = now

    async def take(self, amount: float) -> None:
        # A request larger than the bucket could never fit; it waits for a full bucket instead
        # and the excess is charged, which delays whoever comes next.
        wanted = min(amount, self.capacity)
        async with self._lock:
            while True:
                self._refill()
                if self._level >= wanted:
                    self._level -= amount
                    return
                await self._sleep((wanted - self._level) / self.rate_per_s)

    def charge(self, amount: float) -> None:
        """Adjust after the fact (negative amounts refund)."""
        self._refill()
        self._level = min(self.capacity, self._level - amount)


class RateLimiter:
    """``--rpm`` and ``--tpm`` for one batch; either may be None (unlimited)."""

    def __init__(
        self,
        *,
        rpm: float | None = None,
        tpm: float | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.requests = (
            TokenBucket(rpm / 60.0, max(1.0, rpm / 60.0), clock=clock, sleep=sleep) if rpm else None
        )
        self.tokens = TokenBucket(tpm / 60.0, max(1.0, tpm / 60.0), clock=clock, sleep=sleep) if tpm else None

    async def acquire(self, estimated_tokens: int) -> None:
        if self.requests is not None:
            await self.requests.take(1)
        if self.tokens is not None:
            await self.tokens.take(estimated_tokens)

    def settle(self, *, requests_made: int, tokens_used: int, estimated_tokens: int) -> None:
        """Charge what an article really cost beyond what ``acquire`` took."""
        if self.requests is not None and requests_made > 1:
            self.requests.charge(requests_made - 1)
        if self.tokens is not None:
            self.tokens.charge(tokens_used - estimated_tokens)
