"""The metrics of what landed with push and tenancy: a submit refused by a key's limit, and each
webhook delivery attempt with what followed it."""

from __future__ import annotations

import json
from dataclasses import replace

from grpc_server.config import DispatcherSettings, WebhookEndpoint
from grpc_server.metrics import REGISTRY
from tests.conftest import KEY_A, KEY_B, StackFactory
from tests.integration.test_webhook_delivery import until
from tests.integration.test_webhook_sender import SECRET, Receiver
from tests.rest import edit_form, submit


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_submit_refused_by_a_key_limit_is_counted(make_stack: StackFactory) -> None:
    limited = replace(KEY_A, max_jobs_in_flight=1)
    stack = await make_stack(virtual_keys=(limited, KEY_B), dispatcher=DispatcherSettings(concurrency=0))
    before = value("asyncgate_admission_refusals_total", reason="too_many_jobs_in_flight")
    headers = {"x-bf-vk": KEY_A.value}
    assert (await submit(stack.http, edit_form(), headers))[0] == 202
    assert (await submit(stack.http, edit_form(), headers))[0] == 429
    assert value("asyncgate_admission_refusals_total", reason="too_many_jobs_in_flight") == before + 1


async def test_a_delivered_webhook_is_counted(make_stack: StackFactory) -> None:
    async with Receiver() as receiver:
        stack = await make_stack(webhooks=(WebhookEndpoint("counted", receiver.url(), (SECRET,)),))
        before = value("asyncgate_webhook_deliveries_total", endpoint="counted", outcome="delivered")
        body = {"model": "local/hashing", "input": "hello"}
        headers = {"x-bf-vk": KEY_A.value, "x-bf-async-webhook": "counted"}
        async with stack.http.post("/v1/async/embeddings", json=body, headers=headers) as response:
            assert response.status == 202, await response.text()
        await until(lambda: len(receiver.received) == 1, "the event arrives")
        assert json.loads(receiver.received[0].body)["type"] == "async_job.completed"
        await until(
            lambda: (
                value("asyncgate_webhook_deliveries_total", endpoint="counted", outcome="delivered")
                == before + 1
            ),
            "the attempt is counted",
        )
