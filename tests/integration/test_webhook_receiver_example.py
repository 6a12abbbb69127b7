"""The receiver of docs/webhooks.md, run as written on 127.0.0.1: it accepts what the sender
delivers (204) and refuses a delivery signed with another secret (400)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from grpc_server.config import WebhookEndpoint
from grpc_server.webhooks.events import event_body, new_webhook_id
from grpc_server.webhooks.sender import WebhookSender
from tests.unit.test_webhook_docs import python_block

SECRET = "whsec_" + base64.b64encode(b"r" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"x" * 32).decode()
ENVELOPE = {"id": "job_42", "status": "completed", "status_code": 200}


async def _deliver_to_the_example(secret_signed_with: str, monkeypatch: pytest.MonkeyPatch) -> int | None:
    monkeypatch.setenv("ASYNCGATE_WEBHOOK_SECRET", SECRET)
    namespace: dict[str, Any] = {}
    exec(python_block("from standardwebhooks import Webhook"), namespace)
    app: web.Application = namespace["app"]
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    try:
        endpoint = WebhookEndpoint(
            name="example", url=f"http://127.0.0.1:{port}/asyncgate", secrets=(secret_signed_with,)
        )
        body = event_body("async_job.completed", ENVELOPE, datetime.now(UTC))
        async with aiohttp.ClientSession() as session:
            attempt = await WebhookSender(session).send(endpoint, new_webhook_id(), body)
        return attempt.status
    finally:
        await runner.cleanup()


async def test_the_documented_receiver_accepts_a_delivery(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _deliver_to_the_example(SECRET, monkeypatch) == 204
    assert capsys.readouterr().out == "async_job.completed job_42 completed\n"


async def test_the_documented_receiver_refuses_another_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _deliver_to_the_example(OTHER, monkeypatch) == 400
    assert capsys.readouterr().out == ""
