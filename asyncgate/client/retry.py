"""Retries of safe calls: exponential backoff with jitter, on Unavailable only.

Safe calls are those that cannot do anything twice: reads, waits, and submits that carry
an idempotency key (the server answers a repeated key with the job the first one made).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from asyncgate.client.errors import Unavailable

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` calls at most (the first included); between them the delay doubles from
    `base_delay` up to `max_delay` seconds, half fixed and half random, so that clients
    that failed together do not come back together. `RetryPolicy(attempts=1)`: no retries."""

    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 4.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be 1 or more, not {self.attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays must not be negative")

    def delay(self, retry: int) -> float:
        """The pause before retry number `retry` (1 for the first retry)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        return float(ceiling / 2 + random.uniform(0, ceiling / 2))


async def with_retries(policy: RetryPolicy, call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, again after a pause while it raises Unavailable, at most `policy.attempts` times."""
    for retry in range(1, policy.attempts):
        try:
            return await call()
        except Unavailable:
            await asyncio.sleep(policy.delay(retry))
    return await call()
