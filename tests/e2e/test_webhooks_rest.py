"""Webhooks through the real bridge and server: a submit names an endpoint with
`x-bf-async-webhook` and its end is delivered, signed, to a real receiver (verified there with
the standardwebhooks package); an unknown or disabled name is 400 before any job exists."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from grpc_server.config import AuthSettings, WebhookEndpoint
from tests.conftest import KEY_A, Stack, StackFactory
from tests.e2e.test_tokens import SECRET as TOKEN_SECRET
from tests.e2e.test_tokens import bearer, claims, token
from tests.integration.test_webhook_delivery import until
from tests.integration.test_webhook_sender import SECRET, Answer, Receiver

ISSUER = "https://auth.test"

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
    # The job paths show the endpoint too (asyncgate's own keys); the gateway's paths do not.
    async with stack.http.get(f"/v1/async/jobs/{accepted['id']}", headers=VK_A) as response:
        assert (await response.json())["webhook"] == "orders"
    async with stack.http.get(f"{EMBEDDINGS}/{accepted['id']}", headers=VK_A) as response:
        assert "webhook" not in await response.json()


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


def _admin() -> dict[str, str]:
    return bearer(token(claims(role="admin")))


async def _get(stack: Stack, path: str, headers: dict[str, str], method: str = "GET") -> Any:
    async with stack.http.request(method, path, headers=headers) as response:
        return response.status, await response.json()


async def test_an_admin_lists_deliveries_and_redelivers_one(make_stack: StackFactory) -> None:
    async with Receiver() as receiver:
        receiver.answers.append(Answer(500, b"boom"))
        endpoint = WebhookEndpoint("orders", receiver.url(), (SECRET,), retry_schedule_seconds=())
        stack = await make_stack(
            webhooks=(endpoint,), auth=AuthSettings(jwt_secret=TOKEN_SECRET, issuer=ISSUER, audience="ag")
        )
        status, accepted = await _submit(stack, {"x-bf-async-webhook": "orders"})
        assert status == 202
        path = "/v1/async/webhooks/orders/deliveries"

        async def given_up() -> bool:
            _, listed = await _get(stack, path, _admin())
            return bool(listed["data"]) and listed["data"][0]["state"] == "given_up"

        async with asyncio.timeout(30):
            while not await given_up():
                await asyncio.sleep(0.05)
        _, listed = await _get(stack, path, _admin())
        (event,) = listed["data"]
        assert event["job_id"] == accepted["id"] and event["type"] == "async_job.completed"
        assert event["last_status"] == 500 and event["next_attempt_at"] is None
        assert [(a["attempt"], a["status"], a["excerpt"]) for a in event["attempts"]] == [(1, 500, "boom")]

        status, again = await _get(stack, f"{path}/{event['webhook_id']}/redeliver", _admin(), "POST")
        assert status == 202 and again["state"] == "pending" and again["webhook_id"] == event["webhook_id"]
        await until(lambda: len(receiver.received) == 2, "the redelivery arrives")
        assert receiver.received[1].headers["webhook-id"] == event["webhook_id"]
        assert receiver.received[1].body == receiver.received[0].body and receiver.received[1].verified

        status, body = await _get(stack, f"{path}/msg_unknown/redeliver", _admin(), "POST")
        assert status == 404, body
        status, body = await _get(stack, "/v1/async/webhooks/nope/deliveries", _admin())
        assert status == 404, body
        assert (await _get(stack, path, VK_A))[0] == 403
        assert (await _get(stack, path, bearer(token(claims(vk=KEY_A.id)))))[0] == 403
        assert (await _get(stack, path, {}))[0] == 401
        assert (await _get(stack, f"{path}/{event['webhook_id']}/redeliver", VK_A, "POST"))[0] == 403
