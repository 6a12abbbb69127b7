"""The bridge works a request's result origin out once per scheme and Host (rest_bridge.context
base_url) and reuses it: each allowed Host still gets its own origin, a foreign one is refused
every time (never kept), and the kept origins are bounded."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from rest_bridge.app import create_app
from rest_bridge.config import BridgeConfig
from rest_bridge.context import MAX_ORIGINS, ORIGINS, base_url
from rest_bridge.errors import BridgeError
from tests.conftest import StackFactory
from tests.rest import EDITS, edit_form, submit, wait_terminal


async def test_each_host_gets_its_own_origin_and_a_foreign_one_is_refused_every_time(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(bridge=BridgeConfig(allowed_hosts=("api.example",)))
    status, accepted = await submit(stack.http, edit_form())
    assert status == 202, accepted
    assert (await wait_terminal(stack.http, accepted["id"]))["status"] == "completed"

    async def first_url(host: str) -> tuple[int, Any]:
        async with stack.http.get(f"{EDITS}/{accepted['id']}", headers={"Host": host}) as response:
            body = await response.json()
            return response.status, body["result"]["data"][0]["url"] if response.status == 200 else body

    for _ in range(2):  # the second time from what the first kept
        for port in (8443, 9443):
            status, url = await first_url(f"api.example:{port}")
            assert status == 200 and url.startswith(f"http://api.example:{port}/v1/async/files/"), url
        status, body = await first_url("evil.example")
        assert status == 400 and body["error"]["param"] == "Host", body


def test_kept_origins_are_bounded() -> None:
    app = create_app(BridgeConfig(allowed_hosts=("api.example",)))
    for port in range(10_000, 10_000 + MAX_ORIGINS + 8):
        request = make_mocked_request("GET", "/", headers={"Host": f"api.example:{port}"}, app=app)
        assert base_url(request) == f"http://api.example:{port}"  # past the bound: worked out anew
    assert len(app[ORIGINS]) == MAX_ORIGINS
    foreign = make_mocked_request("GET", "/", headers={"Host": "evil.example"}, app=app)
    with pytest.raises(BridgeError):
        base_url(foreign)
