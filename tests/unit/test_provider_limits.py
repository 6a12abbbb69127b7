"""Per-provider concurrency limits: calls beyond the limit wait for a free slot."""

from __future__ import annotations

import asyncio

from grpc_server.config import RetrySettings
from grpc_server.dispatch.chain import run_chain
from grpc_server.providers.base import Provider
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


async def test_waiting_for_a_slot_does_not_count_against_the_attempt_timeout() -> None:
    registry = ProviderRegistry({"a": LocalProvider("a")}, {"a": 1})
    held = asyncio.Event()
    release = asyncio.Event()

    async def occupy() -> None:
        async with registry.slot("a"):
            held.set()
            await release.wait()

    occupier = asyncio.create_task(occupy())
    await held.wait()

    async def attempt(provider: Provider, model: str) -> str:
        return model

    chain = asyncio.create_task(
        run_chain(
            ["a/m"],
            attempt,
            registry=registry,
            retry=RetrySettings(max_attempts=1, attempt_timeout_seconds=0.01),
        )
    )
    await asyncio.sleep(0.05)  # far past the attempt timeout, still waiting in line
    assert not chain.done()
    release.set()
    success = await chain
    await occupier
    assert success.value == "m"
