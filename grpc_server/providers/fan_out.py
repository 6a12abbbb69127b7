"""n calls for n images, for providers that answer one image per call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

MAX_PARALLEL = 4
"""Calls of one request at once, when the provider has no max_concurrency."""


def parallel_calls(max_concurrency: int | None) -> int:
    """How many of one request's calls may run at once. A request holds one of its provider's
    max_concurrency slots (and its pool has that many connections), so with a limit set its
    calls go one after another: more would exceed the limit, or wait for a connection inside
    the attempt's timeout. Without a limit, up to MAX_PARALLEL."""
    return 1 if max_concurrency else MAX_PARALLEL


async def gather_bounded(count: int, limit: int, call: Callable[[int], Awaitable[T]]) -> list[T]:
    """call(0) ... call(count - 1), at most `limit` at once; the results in index order.

    The first failure wins: it is raised and the calls still running are cancelled (as
    they are when the caller is cancelled), so none outlives the request.
    """
    if count <= 1:
        return [await call(0)]
    semaphore = asyncio.Semaphore(limit)

    async def one(index: int) -> T:
        async with semaphore:
            return await call(index)

    tasks = [asyncio.ensure_future(one(i)) for i in range(count)]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
