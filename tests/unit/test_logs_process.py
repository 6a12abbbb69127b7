"""`python -m asyncgate --log-format json` as a real process: every line it writes is one
JSON object, a real request's lines carry its job_id, and neither the virtual key a
client presented nor a result URL's token appears anywhere in the log."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.processes import AsyncGateProcess
from tests.rest import EDITS, edit_form, wait_terminal

KEY = "sk-bf-logs-test-secret-value"
CONFIG = f"""
[[virtual_keys]]
id = "vk-logs"
value = "{KEY}"

[dispatcher]
poll_interval_seconds = 0.2
"""


class JsonLoggingAsyncGate(AsyncGateProcess):
    def args(self) -> Sequence[str]:
        return [*super().args(), "--log-format", "json", "--access-log"]


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        doc = json.loads(line)  # every line, not only some: a collector reads them all
        assert isinstance(doc, dict), line
        assert {"time", "level", "logger", "message"} <= doc.keys(), line
        lines.append(doc)
    return lines


@pytest.mark.slow
async def test_json_lines_carry_the_job_id_and_never_the_key(tmp_path: Path) -> None:
    async with JsonLoggingAsyncGate(tmp_path, CONFIG, tmp_path / "data") as proc:
        async with aiohttp.ClientSession(proc.base_url) as http:
            for header in ({"x-bf-vk": KEY}, {"Authorization": f"Bearer {KEY}"}):
                async with http.post(EDITS, data=edit_form(), headers=header) as response:
                    assert response.status == 202, await response.text()
                    job_id = (await response.json())["id"]
                job = await wait_terminal(http, job_id, headers=header)
                assert job["status"] == "completed", job
                url = job["result"]["data"][0]["url"]
                async with http.get(url) as response:
                    assert response.status == 200
            # A key nobody configured is refused; its value must not be logged either.
            async with http.get(f"{EDITS}/{job_id}", headers={"x-bf-vk": "sk-bf-unknown-key"}) as response:
                assert response.status == 400
        proc.kill()
        await proc.wait()
        text = proc.log_path.read_text()
    lines = json_lines(text)
    polls = [
        line
        for line in lines
        if line.get("job_id") == job_id
        and line.get("path") == f"{EDITS}/{job_id}"
        and line.get("status") == 200
    ]
    assert polls, proc.fail(f"no access line for the final poll of {job_id}")
    assert polls[-1]["logger"] == "aiohttp.access" and polls[-1]["method"] == "GET"
    done = [line for line in lines if line["message"].startswith(f"job {job_id} completed")]
    assert done and done[0]["job_id"] == job_id, proc.fail("no completion line with the job_id")
    token = url.split("token=")[1]
    for secret in (KEY, "sk-bf-unknown-key", token):
        assert secret not in text, f"{secret} leaked into the log"
