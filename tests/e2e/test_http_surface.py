"""The bridge's HTTP surface: health, unknown paths, wrong methods, all as error objects."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from rest_bridge.app import create_app
from rest_bridge.config import BridgeConfig
from tests.conftest import Stack
from tests.rest import EDITS


async def test_health_is_200_while_the_server_serves(stack: Stack) -> None:
    async with stack.http.get("/health") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


async def test_health_is_503_when_the_server_is_unreachable() -> None:
    runner = web.AppRunner(create_app(BridgeConfig(grpc_target="127.0.0.1:1", port=0)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{runner.addresses[0][1]}") as http:
            async with http.get("/health") as response:
                assert response.status == 503
            async with http.get(f"{EDITS}/3b241101-e2bb-4255-8caf-4136c566a962") as response:
                assert response.status == 503
                body = await response.json()
                assert body["is_bifrost_error"] is True
    finally:
        await runner.cleanup()


async def test_health_is_503_once_the_server_shuts_down(stack: Stack) -> None:
    await stack.server.stop(grace=0)
    async with stack.http.get("/health") as response:
        assert response.status == 503


async def test_unknown_path_is_404_with_the_error_object(stack: Stack) -> None:
    async with stack.http.get("/v1/async/nothing") as response:
        assert response.status == 404
        body = await response.json()
    assert body["status_code"] == 404 and body["error"]["message"]


async def test_wrong_method_is_405(stack: Stack) -> None:
    async with stack.http.delete(EDITS) as response:
        assert response.status == 405
        assert "POST" in response.headers["Allow"]
        assert (await response.json())["status_code"] == 405
    async with stack.http.put(f"{EDITS}/some-id") as response:
        assert response.status == 405
