"""The whole path through the REST bridge: submit, poll, fetch the result image."""

from __future__ import annotations

import base64
import re
import uuid
from datetime import datetime

from tests.conftest import Stack
from tests.images import decode
from tests.rest import EDITS, edit_form, submit, wait_terminal

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def test_submit_answers_202_with_id_status_and_created_at(stack: Stack) -> None:
    status, body = await submit(stack.http, edit_form())
    assert status == 202
    assert list(body) == ["id", "status", "created_at"]
    assert body["status"] == "pending"
    assert UUID4.match(body["id"]) and uuid.UUID(body["id"]).version == 4
    assert body["created_at"].endswith("Z")
    datetime.fromisoformat(body["created_at"].replace("Z", "+00:00"))


async def test_completed_job_envelope_and_result_image_by_url(stack: Stack) -> None:
    _, accepted = await submit(stack.http, edit_form())
    job = await wait_terminal(stack.http, accepted["id"])
    assert job["status"] == "completed", job
    assert list(job) == ["id", "status", "expires_at", "created_at", "completed_at", "status_code", "result"]
    assert job["status_code"] == 200
    result = job["result"]
    assert result["extra_fields"] == {
        "provider": "local",
        "model_requested": "pillow",
        "request_type": "image_edit",
    }
    [item] = result["data"]
    assert item["url"].startswith(stack.base_url + "/v1/async/files/")
    async with stack.http.get(item["url"]) as response:
        assert response.status == 200
        assert response.content_type == "image/png"
        image = decode(await response.read())
    assert image.mode == "RGBA"
    alpha = image.getchannel("A")
    assert alpha.getpixel((0, 0)) == 0  # background removed
    assert alpha.getpixel((32, 32)) == 255  # subject kept


async def test_b64_json_result_is_inline(stack: Stack) -> None:
    _, accepted = await submit(stack.http, edit_form({"response_format": "b64_json", "n": "2"}))
    job = await wait_terminal(stack.http, accepted["id"])
    assert job["status"] == "completed", job
    images = [decode(base64.b64decode(item["b64_json"])) for item in job["result"]["data"]]
    assert len(images) == 2 and all(i.size == (64, 64) for i in images)


async def test_poll_is_202_while_pending(stack: Stack) -> None:
    assert stack.server.dispatcher is not None
    await stack.server.dispatcher.stop(grace_seconds=0)  # nothing will run the job
    _, accepted = await submit(stack.http, edit_form())
    async with stack.http.get(f"{EDITS}/{accepted['id']}") as response:
        assert response.status == 202
        body = await response.json()
    assert list(body) == ["id", "status", "created_at"]
    assert body["status"] == "pending"
