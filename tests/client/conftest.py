"""The client under test, over each transport, against the real server and bridge."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from asyncgate.client import AsyncClient
from tests.conftest import KEY_A, Stack


@pytest.fixture(params=["grpc", "rest"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def connect(transport: str) -> AsyncIterator[Callable[[Stack], AsyncClient]]:
    """`connect(stack, key=...)`: a client of that stack over the test's transport, closed after."""
    clients: list[AsyncClient] = []

    def make(stack: Stack, key: str | None = KEY_A.value) -> AsyncClient:
        client = (
            AsyncClient(grpc_target=stack.grpc_target, key=key)
            if transport == "grpc"
            else AsyncClient(stack.base_url, key=key)
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


Connect = Callable[..., AsyncClient]
