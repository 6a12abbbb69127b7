"""The server killed while a delivery is in flight (its receiver hangs) and started again on the
same data: the event is delivered, under the same webhook-id, by the new process. Real
processes (tests/processes.py), a real receiver verifying with the standardwebhooks package."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.test_durability import wait_until
from tests.integration.test_webhook_sender import SECRET, Answer, Receiver
from tests.processes import AsyncGateProcess

pytestmark = pytest.mark.slow


def _config(url: str) -> str:
    return f"""
[dispatcher]
poll_interval_seconds = 0.2

[[webhooks]]
name = "orders"
url = "{url}"
secret = "{SECRET}"
timeout_seconds = 3
"""


@pytest.mark.timeout(90)
async def test_a_delivery_cut_by_a_crash_is_delivered_after_restart_with_its_id(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with Receiver() as receiver:
        receiver.answers.append(Answer(hold=True))  # the first attempt never gets an answer
        config = _config(receiver.url())
        async with AsyncGateProcess(tmp_path, config, data_dir, "first") as first:
            async with aiohttp.ClientSession(first.base_url) as http:
                body = {"model": "local/hashing", "input": "hello"}
                headers = {"x-bf-async-webhook": "orders"}
                async with http.post("/v1/async/embeddings", json=body, headers=headers) as response:
                    assert response.status == 202, await response.text()
                    job_id = (await response.json())["id"]
            await wait_until(lambda: len(receiver.received) == 1, first, "the first attempt")
            first.kill(signal.SIGKILL)
            await first.wait()
        async with AsyncGateProcess(tmp_path, config, data_dir, "restarted") as restarted:
            await wait_until(lambda: len(receiver.received) == 2, restarted, "the delivery after restart")
    cut, delivered = receiver.received
    assert cut.headers["webhook-id"] == delivered.headers["webhook-id"]
    assert delivered.verified and delivered.body == cut.body
    event = json.loads(delivered.body)
    assert event["type"] == "async_job.completed" and event["data"]["id"] == job_id
