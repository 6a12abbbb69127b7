"""Result URLs (with their tokens) point only where the configuration allows: the public
URL, else the request's Host if allowed; beyond loopback one of the two is required."""

from __future__ import annotations

from typing import Any

import pytest

from rest_bridge.config import BridgeConfig
from tests.conftest import Stack, StackFactory
from tests.rest import EDITS, edit_form, submit, wait_terminal


@pytest.mark.parametrize("host", ["0.0.0.0", "", "10.1.2.3", "bridge.internal"])
def test_beyond_loopback_a_public_url_or_allowed_hosts_is_required(host: str) -> None:
    with pytest.raises(ValueError, match="public_url"):
        BridgeConfig(host=host)
    assert BridgeConfig(host=host, public_url="https://api.example").public_url
    assert BridgeConfig(host=host, allowed_hosts=("api.example",)).result_hosts == ("api.example",)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_on_loopback_the_loopback_names_are_allowed(host: str) -> None:
    assert "localhost" in BridgeConfig(host=host).result_hosts


async def _completed_url_job(stack: Stack) -> str:
    status, accepted = await submit(stack.http, edit_form())
    assert status == 202, accepted
    job = await wait_terminal(stack.http, accepted["id"])
    assert job["status"] == "completed", job
    job_id: str = accepted["id"]
    return job_id


async def _first_url(stack: Stack, job_id: str, host: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Host": host} if host else {}
    async with stack.http.get(f"{EDITS}/{job_id}", headers=headers) as response:
        return response.status, await response.json()


async def test_a_foreign_host_header_gets_no_result_urls(stack: Stack) -> None:
    job_id = await _completed_url_job(stack)
    status, body = await _first_url(stack, job_id, "evil.example")
    assert status == 400 and body["error"]["param"] == "Host", body
    assert "evil.example" not in str(body.get("result", ""))


async def test_an_allowed_host_header_decides_the_origin(make_stack: StackFactory) -> None:
    stack = await make_stack(bridge=BridgeConfig(allowed_hosts=("api.example",)))
    job_id = await _completed_url_job(stack)
    status, body = await _first_url(stack, job_id, "api.example:8443")
    assert status == 200, body
    url = body["result"]["data"][0]["url"]
    assert url.startswith("http://api.example:8443/v1/async/files/")


async def test_the_public_url_wins_over_any_host(make_stack: StackFactory) -> None:
    stack = await make_stack(bridge=BridgeConfig(public_url="https://images.example/base/"))
    job_id = await _completed_url_job(stack)
    status, body = await _first_url(stack, job_id, "evil.example")
    assert status == 200, body
    url = body["result"]["data"][0]["url"]
    assert url.startswith("https://images.example/base/v1/async/files/")
