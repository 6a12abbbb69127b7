"""Per-provider concurrency limits: calls beyond the limit wait for a free slot."""

from __future__ import annotations

import asyncio

from grpc_server.providers.local import LocalProvider
from grpc_server.providers.registry import ProviderRegistry


async def test_calls_beyond_the_limit_wait_for_a_slot() -> None:
    registry = ProviderRegistry({"slow": LocalProvider("slow"), "free": LocalProvider("free")}, {"slow": 2})
    inside = 0
    most = 0
    release = asyncio.Event()

    async def call(name: str) -> None:
        nonlocal inside, most
        async with registry.slot(name):
            inside += 1
            most = max(most, inside)
            await release.wait()
            inside -= 1

    slow = [asyncio.create_task(call("slow")) for _ in range(5)]
    while inside < 2:
        await asyncio.sleep(0)
    for _ in range(10):
        await asyncio.sleep(0)  # give the other three every chance to get in
    assert inside == 2
    release.set()
    await asyncio.gather(*slow)
    assert most == 2


async def test_a_provider_without_a_limit_is_not_bounded() -> None:
    registry = ProviderRegistry({"free": LocalProvider("free")}, {"free": None})
    async with registry.slot("free"), registry.slot("free"), registry.slot("free"):
        pass
