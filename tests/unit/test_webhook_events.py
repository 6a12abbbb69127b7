"""The event body: type, RFC 3339 timestamp and the job envelope, with a large result left out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from grpc_server.webhooks.events import event_body, event_type_for, new_webhook_id

AT = datetime(2026, 12, 4, 16, 4, 1, 123456, tzinfo=UTC)


def _envelope(result: Any = None) -> dict[str, Any]:
    envelope: dict[str, Any] = {
        "id": "job_1",
        "status": "completed",
        "status_code": 200,
        "created_at": "2026-12-04T16:00:00.000Z",
        "completed_at": "2026-12-04T16:04:01.000Z",
    }
    if result is not None:
        envelope["result"] = result
    return envelope


def test_the_body_is_type_timestamp_and_the_envelope() -> None:
    envelope = _envelope({"data": [{"b64_json": "aGk="}]})
    doc = json.loads(event_body("async_job.completed", envelope, AT))
    assert doc == {"type": "async_job.completed", "timestamp": "2026-12-04T16:04:01.123Z", "data": envelope}
    assert list(doc) == ["type", "timestamp", "data"]


def test_the_timestamp_is_utc_whatever_the_zone_given() -> None:
    tokyo = AT.astimezone(timezone(timedelta(hours=9)))
    doc = json.loads(event_body("async_job.failed", _envelope(), tokyo))
    assert doc["timestamp"] == "2026-12-04T16:04:01.123Z"


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        event_body("async_job.failed", _envelope(), AT.replace(tzinfo=None))


def test_an_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'async_job\.done'"):
        event_body("async_job.done", _envelope(), AT)


def test_a_result_up_to_the_limit_is_kept_and_a_larger_one_omitted() -> None:
    result = {"text": "x" * 100}
    size = len(json.dumps(result, separators=(",", ":")).encode())
    kept = json.loads(event_body("async_job.completed", _envelope(result), AT, max_result_bytes=size))
    assert kept["data"]["result"] == result and "result_omitted" not in kept["data"]
    cut = json.loads(event_body("async_job.completed", _envelope(result), AT, max_result_bytes=size - 1))
    assert "result" not in cut["data"]
    assert cut["data"]["result_omitted"] is True
    assert {k: v for k, v in cut["data"].items() if k != "result_omitted"} == _envelope()


def test_the_default_limit_is_256_kib() -> None:
    small = json.loads(event_body("async_job.completed", _envelope("y" * 200_000), AT))
    large = json.loads(event_body("async_job.completed", _envelope("y" * 300_000), AT))
    assert small["data"]["result"] == "y" * 200_000
    assert large["data"]["result_omitted"] is True


def test_the_size_counts_utf8_bytes_not_characters() -> None:
    result = "é" * 60  # its JSON: 62 characters, 122 bytes in UTF-8
    doc = json.loads(event_body("async_job.completed", _envelope(result), AT, max_result_bytes=100))
    assert doc["data"]["result_omitted"] is True


def test_the_envelope_given_is_not_changed() -> None:
    envelope = _envelope("z" * 50)
    event_body("async_job.completed", envelope, AT, max_result_bytes=1)
    assert envelope["result"] == "z" * 50


def test_the_same_inputs_give_the_same_bytes() -> None:
    envelope = _envelope({"a": 1})
    assert event_body("async_job.cancelled", envelope, AT) == event_body("async_job.cancelled", envelope, AT)


@pytest.mark.parametrize(
    ("status", "event"),
    [
        ("completed", "async_job.completed"),
        ("failed", "async_job.failed"),
        ("cancelled", "async_job.cancelled"),
        ("pending", None),
        ("processing", None),
    ],
)
def test_each_terminal_status_has_its_event(status: str, event: str | None) -> None:
    assert event_type_for(status) == event


def test_webhook_ids_are_fresh_and_safe_to_sign() -> None:
    ids = {new_webhook_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith("msg_") and i[4:].isalnum() and len(i) == 36 for i in ids)
