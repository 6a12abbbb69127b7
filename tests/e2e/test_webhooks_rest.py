"""Webhooks through the real bridge and server: a submit names an endpoint with
`x-bf-async-webhook` and its end is delivered, signed, to a real receiver (verified there with
the standardwebhooks package); an unknown or disabled name is 400 before any job exists."""

from __future__ import annotations

import json
from typing import Any

from grpc_server.config import WebhookEndpoint
from tests.conftest import KEY_A, Stack, StackFactory
from tests.integration.test_webhook_delivery import until
from tests.integration.test_webhook_sender import SECRET, Receiver

EMBEDDINGS = "/v1/async/embeddings"
VK_A = {"x-bf-vk": KEY_A.value}


async def _submit(stack: Stack, headers: dict[str, str]) -> Any:
    body = {"model": "local/hashing", "input": "hello"}
    async with stack.http.post(EMBEDDINGS, json=body, headers={**VK_A, **headers}) as response:
        return response.status, await response.json()


async def test_a_job_naming_an_endpoint_is_delivered_when_it_completes(make_stack: StackFactory) -> None:
    async with Receiver() as receiver:
        endpoint = WebhookEndpoint("orders", receiver.url(), (SECRET,))
        stack = await make_stack(webhooks=(endpoint,))
        status, accepted = await _submit(stack, {"x-bf-async-webhook": "orders"})
        assert status == 202
        await until(lambda: len(receiver.received) == 1, "the event arrives")
    (got,) = receiver.received
    event = json.loads(got.body)
    assert got.verified and event["type"] == "async_job.completed"
    assert event["data"]["id"] == accepted["id"] and event["data"]["status"] == "completed"
    assert event["data"]["webhook"] == "orders" and event["data"]["result_omitted"] is True


async def test_an_unknown_or_disabled_endpoint_is_refused_before_any_job_exists(
    make_stack: StackFactory,
) -> None:
    off = WebhookEndpoint("off", "http://127.0.0.1:9/", (SECRET,), enabled=False)
    stack = await make_stack(webhooks=(off,))
    for name, words in (("nope", "no webhook endpoint is named 'nope'"), ("off", "'off' is disabled")):
        status, body = await _submit(stack, {"x-bf-async-webhook": name})
        assert status == 400 and body["error"]["param"] == "webhook", body
        assert words in body["error"]["message"]
    assert stack.stored_jobs() == 0
