"""docs/webhooks.md: its standard-library verifier, run as written, accepts what asyncgate
signs (each secret of a rotation) and refuses what it must."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from grpc_server.config import WEBHOOK_RETRY_SCHEDULE
from grpc_server.webhooks.signing import signed_headers

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
NEW = "whsec_" + base64.b64encode(b"n" * 32).decode()
OLD = "whsec_" + base64.b64encode(b"o" * 24).decode()
BODY = b'{"type":"async_job.failed","timestamp":"2026-12-04T16:04:01.123Z","data":{"id":"job_1"}}'


def python_block(containing: str) -> str:
    """The docs' python code block that contains `containing`."""
    blocks: list[str] = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    [block] = [b for b in blocks if containing in b]
    return block


def _stdlib_verify() -> Callable[..., bool]:
    namespace: dict[str, Any] = {}
    exec(python_block("def verify("), namespace)
    verify: Callable[..., bool] = namespace["verify"]
    return verify


def test_the_stdlib_verifier_accepts_a_delivery_with_each_secret_of_a_rotation() -> None:
    verify = _stdlib_verify()
    headers = signed_headers([NEW, OLD], "msg_1", int(time.time()), BODY)
    assert verify(NEW, headers, BODY) and verify(OLD, headers, BODY)


@pytest.mark.parametrize("change", ["body", "secret", "id", "stale", "future"])
def test_the_stdlib_verifier_refuses_what_it_must(change: str) -> None:
    verify = _stdlib_verify()
    now = int(time.time())
    timestamp = {"stale": now - 3600, "future": now + 3600}.get(change, now)
    headers = signed_headers([NEW], "msg_1", timestamp, BODY)
    body, secret = BODY, NEW
    if change == "body":
        body = BODY.replace(b"job_1", b"job_2")
    elif change == "secret":
        secret = OLD
    elif change == "id":
        headers["webhook-id"] = "msg_2"
    assert not verify(secret, headers, body)


def test_the_documented_schedule_is_the_default() -> None:
    text = DOC.read_text()
    assert "| after | 5 s | 5 min | 30 min | 2 h | 5 h | 10 h | 10 h |" in text
    assert WEBHOOK_RETRY_SCHEDULE == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert f"about {sum(WEBHOOK_RETRY_SCHEDULE) / 3600:.1f} hours" in text
