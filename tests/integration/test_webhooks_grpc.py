"""Webhooks over gRPC: JobOptions.webhook names an endpoint (refused when unknown, or once
the endpoint answered 410, before any job exists); ListWebhookDeliveries and
RedeliverWebhook are for admins only."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import grpc
import pytest

from asyncgate.v1 import embedding_pb2 as emb_pb
from asyncgate.v1 import job_service_pb2 as pb
from grpc_server.config import AuthSettings, WebhookEndpoint
from tests.conftest import KEY_A, StackFactory
from tests.e2e.test_tokens import SECRET as TOKEN_SECRET
from tests.e2e.test_tokens import claims, token
from tests.grpc_details import error_details
from tests.integration.test_webhook_delivery import until
from tests.integration.test_webhook_sender import SECRET, Answer, Receiver
from tests.pg import fresh_database

A = (("x-bf-vk", KEY_A.value),)
AUTH = AuthSettings(jwt_secret=TOKEN_SECRET, issuer="https://auth.test", audience="ag")


def _admin() -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token(claims(role='admin'))}"),)


def _embedding(webhook: str) -> pb.CreateEmbeddingJobRequest:
    return pb.CreateEmbeddingJobRequest(
        request=emb_pb.EmbeddingRequest(model="local/hashing", input=emb_pb.EmbeddingInput(text="hi")),
        options=pb.JobOptions(webhook=webhook),
    )


async def _refused(call: Any) -> tuple[grpc.StatusCode, tuple[str, str], str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), error_details(caught.value), caught.value.details() or ""


async def test_an_endpoint_that_answered_410_is_refused_at_submit(make_stack: StackFactory) -> None:
    async with Receiver() as receiver:
        receiver.answers.append(Answer(410, b"gone"))
        stack = await make_stack(webhooks=(WebhookEndpoint("orders", receiver.url(), (SECRET,)),), auth=AUTH)
        created = await stack.stub.CreateEmbeddingJob(_embedding("orders"), metadata=A)
        await until(lambda: len(receiver.received) == 1, "the event arrives")
        listed: list[pb.WebhookDelivery] = []

        async def gone() -> bool:
            reply = await stack.stub.ListWebhookDeliveries(
                pb.ListWebhookDeliveriesRequest(endpoint="orders"), metadata=_admin()
            )
            listed[:] = reply.deliveries
            return bool(listed) and listed[0].state == "given_up"

        async with asyncio.timeout(30):
            while not await gone():
                await asyncio.sleep(0.05)
        assert listed[0].job_id == created.job.id and listed[0].last_status == 410
        code, (_, field), message = await _refused(
            stack.stub.CreateEmbeddingJob(_embedding("orders"), metadata=A)
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and field == "webhook" and "410" in message
        code, (_, field), _ = await _refused(stack.stub.CreateEmbeddingJob(_embedding("nope"), metadata=A))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and field == "webhook"
        assert stack.stored_jobs() == 1


async def test_deliveries_are_for_admins_only(make_stack: StackFactory) -> None:
    stack = await make_stack(
        webhooks=(WebhookEndpoint("orders", "http://127.0.0.1:9/", (SECRET,)),), auth=AUTH
    )
    listing = pb.ListWebhookDeliveriesRequest(endpoint="orders")
    redeliver = pb.RedeliverWebhookRequest(endpoint="orders", webhook_id="msg_x")
    assert (await _refused(stack.stub.ListWebhookDeliveries(listing)))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert (await _refused(stack.stub.ListWebhookDeliveries(listing, metadata=A)))[0] == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert (await _refused(stack.stub.RedeliverWebhook(redeliver, metadata=A)))[0] == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert (await _refused(stack.stub.RedeliverWebhook(redeliver, metadata=_admin())))[0] == (
        grpc.StatusCode.NOT_FOUND
    )
    reply = await stack.stub.ListWebhookDeliveries(listing, metadata=_admin())
    assert list(reply.deliveries) == []


async def test_two_servers_on_postgres_deliver_every_event_once(make_stack: StackFactory) -> None:
    async with fresh_database() as dsn, Receiver() as receiver:
        endpoint = WebhookEndpoint("orders", receiver.url(), (SECRET,))
        first = await make_stack(webhooks=(endpoint,), database_url=dsn)
        second = await make_stack(webhooks=(endpoint,), database_url=dsn)
        job_ids = set()
        for n in range(40):
            stack = first if n % 2 else second
            job_ids.add((await stack.stub.CreateEmbeddingJob(_embedding("orders"), metadata=A)).job.id)
        await until(lambda: len(receiver.received) >= 40, "every event arrives")
        await asyncio.sleep(0.5)  # a duplicate, if any, would arrive meanwhile
    ids = Counter(r.headers["webhook-id"] for r in receiver.received)
    assert len(ids) == 40 and set(ids.values()) == {1}
    assert all(r.verified for r in receiver.received)
    assert {json.loads(r.body)["data"]["id"] for r in receiver.received} == job_ids
