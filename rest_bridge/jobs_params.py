"""What the job paths read from a request: `Prefer: wait=N`, `Last-Event-ID`, the list's query
parameters, and the submit headers `Idempotency-Key` and `x-asyncgate-labels`. Each refuses a bad
value with a 400 naming it."""

from __future__ import annotations

import re
from datetime import datetime

from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp
from multidict import MultiMapping

from asyncgate.v1 import job_service_pb2 as pb
from rest_bridge.config import CONFIG
from rest_bridge.envelope import REQUEST_TYPES, STATUS
from rest_bridge.errors import BridgeError

IDEMPOTENCY_HEADER = "Idempotency-Key"
LABELS_HEADER = "x-asyncgate-labels"
_WAIT = re.compile(r"^\s*wait\s*=\s*([0-9]{1,9})\s*$", re.IGNORECASE)
_CHANGE_NUMBER = re.compile(r"[0-9]{1,19}")
"""ASCII digits only: str.isdigit() and \\d also take other scripts' digits and superscripts."""
_PAGE_SIZE = re.compile(r"[0-9]{1,3}")
_INT64_MAX = 2**63 - 1
_STATUSES = {name: number for number, name in STATUS.items()}
_TYPES = {name: number for number, name in REQUEST_TYPES.items()}


def preferred_wait(request: web.Request) -> int | None:
    """The N of `Prefer: wait=N` (RFC 7240; other preferences ignored), capped at the bridge's
    max_wait_seconds; None without one."""
    for header in request.headers.getall("Prefer", []):
        for preference in header.split(","):
            if match := _WAIT.match(preference.split(";")[0]):
                return min(int(match.group(1)), request.app[CONFIG].max_wait_seconds)
    return None


def last_event_id(request: web.Request) -> int:
    value = request.headers.get("Last-Event-ID", "").strip()
    if not value:
        return 0
    if not _CHANGE_NUMBER.fullmatch(value) or int(value) > _INT64_MAX:
        raise BridgeError(
            400, f"invalid Last-Event-ID: {value!r} (a change number is expected)", "Last-Event-ID"
        )
    return int(value)


def request_id(request: web.Request) -> str:
    """Idempotency-Key: 1 to 255 printable ASCII characters ("" when absent)."""
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None:
        return ""
    if not 1 <= len(value) <= 255 or not (value.isascii() and value.isprintable()):
        raise BridgeError(
            400,
            "invalid Idempotency-Key: 1 to 255 printable ASCII characters are allowed",
            IDEMPOTENCY_HEADER,
        )
    return value


def labels(request: web.Request) -> dict[str, str]:
    """x-asyncgate-labels: `k1=v1,k2=v2` (the server checks the keys and values)."""
    value = request.headers.get(LABELS_HEADER)
    if value is None or not value.strip():
        return {}
    found: dict[str, str] = {}
    for item in value.split(","):
        key, sep, label = item.strip().partition("=")
        if not sep or key in found:
            raise BridgeError(
                400, f"invalid labels: {item.strip()!r} is not key=value (or repeats its key)", "labels"
            )
        found[key] = label
    return found


def with_submit_headers(options: pb.JobOptions, request: web.Request) -> pb.JobOptions:
    """The submit's options with its request id and labels from the headers."""
    options.request_id = request_id(request)
    options.labels.update(labels(request))
    return options


def _time(query: MultiMapping[str], name: str) -> Timestamp | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise BridgeError(400, f"invalid {name}: {value!r} (an RFC 3339 time is expected)", name)
    stamp = Timestamp()
    try:
        stamp.FromDatetime(parsed)
    except (OverflowError, ValueError):  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise BridgeError(400, f"invalid {name}: {value!r} (out of the range of times)", name) from None
    return stamp


def list_request(query: MultiMapping[str]) -> pb.ListJobsRequest:
    """GET /v1/async/jobs's query parameters as a ListJobsRequest."""
    listing = pb.ListJobsRequest(page_token=query.get("page_token", ""))
    for status in query.getall("status", []):
        if status not in _STATUSES:
            raise BridgeError(400, f"invalid status: {status!r} (one of {', '.join(_STATUSES)})", "status")
        listing.statuses.append(_STATUSES[status])
    if (kind := query.get("type")) is not None:
        if kind not in _TYPES:
            raise BridgeError(400, f"invalid type: {kind!r} (one of {', '.join(_TYPES)})", "type")
        listing.request_type = _TYPES[kind]
    for label in query.getall("label", []):
        key, sep, value = label.partition("=")
        if not sep or not key:
            raise BridgeError(400, f"invalid label: {label!r} (key=value is expected)", "label")
        listing.labels[key] = value
    if (size := query.get("page_size")) is not None:
        if not _PAGE_SIZE.fullmatch(size) or not 1 <= int(size) <= 100:
            raise BridgeError(400, f"invalid page_size: {size!r} (1 to 100)", "page_size")
        listing.page_size = int(size)
    for name, field in (("created_after", "create_time_after"), ("created_before", "create_time_before")):
        if (stamp := _time(query, name)) is not None:
            getattr(listing, field).CopyFrom(stamp)
    return listing
