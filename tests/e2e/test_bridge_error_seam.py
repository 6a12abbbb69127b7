"""The bridge's one error middleware, on the real app over a real socket: error objects
name the route's operation, and an unexpected failure is a generic 500 with the event_id
(the traceback goes to the log with that id)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from rest_bridge.app import create_app
from rest_bridge.config import BridgeConfig
from rest_bridge.errors import GENERIC_500
from tests.conftest import Stack
from tests.rest import EDITS

JOB_ID = "3b241101-e2bb-4255-8caf-4136c566a962"


@pytest.mark.parametrize(
    ("path", "request_type"),
    [
        (f"{EDITS}/{JOB_ID}", "image_edit"),
        (f"/v1/async/images/generations/{JOB_ID}", "image_generation"),
        (f"/v1/async/embeddings/{JOB_ID}", "embedding"),
    ],
)
async def test_a_poll_error_names_the_routes_operation(stack: Stack, path: str, request_type: str) -> None:
    async with stack.http.get(path) as response:
        assert response.status == 404
        body = await response.json()
    assert body["extra_fields"] == {"request_type": request_type}
    assert body["error"]["code"] == "job_not_found"


async def test_a_submit_error_names_the_routes_operation(stack: Stack) -> None:
    async with stack.http.post("/v1/async/embeddings", json={"model": 5}) as response:
        assert response.status == 400
        assert (await response.json())["extra_fields"] == {"request_type": "embedding"}


@pytest.fixture
async def app_with_a_broken_route() -> AsyncIterator[aiohttp.ClientSession]:
    app = create_app(BridgeConfig(grpc_target="127.0.0.1:1", port=0))

    async def broken(request: web.Request) -> web.StreamResponse:
        raise KeyError("internal detail /srv/secret")

    app.router.add_get("/v1/async/embeddings/{job_id}/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    async with aiohttp.ClientSession(f"http://127.0.0.1:{runner.addresses[0][1]}") as http:
        yield http
    await runner.cleanup()


async def test_an_unexpected_failure_is_a_generic_500_with_the_event_id(
    app_with_a_broken_route: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        async with app_with_a_broken_route.get(f"/v1/async/embeddings/{JOB_ID}/broken") as response:
            assert response.status == 500
            text = await response.text()
            body = await response.json()
    assert "secret" not in text and "KeyError" not in text
    assert body["is_bifrost_error"] is True
    event_id = body["event_id"]
    assert body["error"]["event_id"] == event_id
    assert body["error"]["message"] == GENERIC_500
    logged = [r for r in caplog.records if event_id in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None
    assert "internal detail /srv/secret" in str(logged[0].exc_info[1])
