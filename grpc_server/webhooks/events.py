"""The event a job's end becomes: `{"type", "timestamp", "data": <the job envelope>}` as bytes.

The body is built once, when the job ends, and stored with it: every attempt sends the same
bytes under the same `webhook-id` (only `webhook-timestamp` and the signatures change).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from grpc_server.config_checks import WEBHOOK_EVENT_TYPES

DEFAULT_MAX_RESULT_BYTES = 256 * 1024
EVENT_FOR_STATUS = dict(zip(("completed", "failed", "cancelled"), WEBHOOK_EVENT_TYPES, strict=True))
"""A terminal job status -> the event type it sends."""


def event_type_for(status: str) -> str | None:
    """The event type of a job that ended with `status`; None for a status that is not terminal."""
    return EVENT_FOR_STATUS.get(status)


def new_webhook_id() -> str:
    """A fresh `webhook-id` (one per event, kept across its retries): msg_ and 32 hex digits."""
    return "msg_" + secrets.token_hex(16)


def rfc3339(at: datetime) -> str:
    """UTC with milliseconds and Z, as the job envelope writes its times."""
    if at.tzinfo is None:
        raise ValueError("an event time must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _json(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def event_body(
    event_type: str,
    envelope: Mapping[str, Any],
    at: datetime,
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
) -> bytes:
    """The JSON body of an event: `data` is the envelope, except that a `result` whose JSON is
    larger than max_result_bytes is left out and `"result_omitted": true` set (the receiver
    fetches it from the job's result path instead)."""
    if event_type not in WEBHOOK_EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    data = dict(envelope)
    if "result" in data and len(_json(data["result"])) > max_result_bytes:
        del data["result"]
        data["result_omitted"] = True
    return _json({"type": event_type, "timestamp": rfc3339(at), "data": data})
