"""Each provider's connection pool comes from its settings (factory.build_registry): at
most `max_concurrency` requests at once, and no hidden cap when it is unset."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from grpc_server.config import ServerConfig, config_from_mapping
from grpc_server.domain.jobs import RequestType
from grpc_server.providers.base import ImageOutcome, Provider
from grpc_server.providers.factory import build_registry
from grpc_server.providers.local import LocalProvider
from grpc_server.providers.registry import ProviderRegistry
from tests.fakes.openai_server import FakeOpenAI, FakeResponse
from tests.integration.helpers import generation_call

ARRIVAL_BOUND = 60.0
"""Seconds to wait for requests that should all arrive; a bound on a hang, not a measure."""


def config(fake: FakeOpenAI, **settings: Any) -> ServerConfig:
    table = {"kind": "openai-compatible", "base_url": fake.base_url, **settings}
    return config_from_mapping({"providers": {"compat": table}}, env={})


def adapter(registry: ProviderRegistry) -> Provider:
    provider = registry.get("compat")
    assert provider is not None
    return provider


async def generate(provider: Provider, index: int) -> ImageOutcome:
    return await provider.generate_image(generation_call("compat", "m", f"picture {index}"))


async def arrived(fake: FakeOpenAI, count: int) -> None:
    async def poll() -> None:
        while len(fake.requests) < count:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), ARRIVAL_BOUND)


async def test_a_provider_gets_no_more_requests_at_once_than_max_concurrency() -> None:
    async with FakeOpenAI(api_key=None) as fake:
        fake.latency = 0.2
        registry = build_registry(config(fake, max_concurrency=2))
        try:
            # Straight to the adapter, around the registry's slots: the pool alone holds the line.
            provider = adapter(registry)
            outcomes = await asyncio.gather(*(generate(provider, i) for i in range(6)))
        finally:
            await registry.close()

    assert all(outcome.images for outcome in outcomes)
    assert len(fake.requests) == 6
    assert fake.max_in_flight == 2


async def test_without_max_concurrency_there_is_no_hidden_cap() -> None:
    calls = 120  # aiohttp's default connector would hold all but 100 back
    async with FakeOpenAI(api_key=None) as fake:
        fake.enqueue(*(FakeResponse.hang() for _ in range(calls)))
        registry = build_registry(config(fake))
        provider = adapter(registry)
        tasks = [asyncio.ensure_future(generate(provider, i)) for i in range(calls)]
        try:
            await arrived(fake, calls)
            assert fake.max_in_flight == calls
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await registry.close()


async def test_close_closes_the_pools_the_registry_opened() -> None:
    async with FakeOpenAI(api_key=None) as fake:
        registry = build_registry(config(fake))
        provider = adapter(registry)
        await generate(provider, 0)

        await registry.close()

        with pytest.raises(RuntimeError, match="closed"):
            await generate(provider, 1)


async def test_a_session_passed_in_is_shared_and_left_open() -> None:
    async with FakeOpenAI(api_key=None) as fake, aiohttp.ClientSession() as session:
        registry = build_registry(config(fake), session)
        await registry.close()

        outcome = await generate(adapter(registry), 0)  # the caller's session still works

        assert outcome.images
        assert not session.closed


async def test_local_providers_get_local_max_pixels() -> None:
    base = config_from_mapping({"providers": {"offline": {"kind": "local"}}}, env={})
    registry = build_registry(replace(base, local_max_pixels=4096))
    try:
        for name in ("local", "offline"):
            provider = registry.get(name)
            assert isinstance(provider, LocalProvider)
            assert provider.max_pixels == 4096
            assert provider.supports(RequestType.IMAGE_VARIATION)
    finally:
        await registry.close()
