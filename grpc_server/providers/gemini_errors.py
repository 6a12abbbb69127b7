"""Gemini's error answers, classified: `{"error": {"code", "message", "status", "details"}}`
(also inside a one-element array), with google.rpc ErrorInfo, RetryInfo and BadRequest
details.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from grpc_server.providers.base import ProviderError, parse_retry_after, retryable_status
from grpc_server.providers.http_errors import body_prefix

# The canonical google.rpc status of an HTTP status, for error bodies that name none.
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)s\s*")


def classify_error(
    status: int, headers: Mapping[str, str], raw: bytes, redact: Callable[[str], str]
) -> ProviderError:
    """`{"error": {"code", "message", "status", "details"}}` as a ProviderError: type = the
    status lower-cased, code = the ErrorInfo reason or the status, param = the first
    BadRequest field violation, retry_after = RetryInfo's retryDelay or Retry-After."""
    error = _error_object(raw)
    details = error.get("details")
    details = [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []
    status_name = _str(error.get("status")) or _STATUS_NAMES.get(status, "")
    reason = _detail(details, _ERROR_INFO, "reason")
    message = _str(error.get("message")) or body_prefix(raw, status)
    retry_after = _duration(_detail(details, _RETRY_INFO, "retryDelay"))
    if retry_after is None:
        retry_after = parse_retry_after(headers.get("Retry-After"))
    return ProviderError(
        message=redact(message),
        status_code=status,
        type=status_name.lower(),
        code=redact(reason or status_name),
        param=redact(_field_violation(details)),
        retryable=retryable_status(status),
        retry_after=retry_after,
        details={k: v for k, v in (("status", status_name), ("reason", reason)) if v},
    )


def _error_object(raw: bytes) -> dict[str, Any]:
    """The `error` object of a Google error body (also inside a one-element array); {} when none."""
    try:
        doc: Any = json.loads(raw)
    except ValueError:
        return {}
    if isinstance(doc, list) and doc:
        doc = doc[0]
    error = doc.get("error") if isinstance(doc, dict) else None
    return error if isinstance(error, dict) else {}


def _detail(details: list[dict[str, Any]], type_url: str, name: str) -> str:
    for detail in details:
        if detail.get("@type") == type_url and isinstance(value := detail.get(name), str):
            return value
    return ""


def _field_violation(details: list[dict[str, Any]]) -> str:
    for detail in details:
        violations = detail.get("fieldViolations") if detail.get("@type") == _BAD_REQUEST else None
        if isinstance(violations, list) and violations and isinstance(violations[0], dict):
            return _str(violations[0].get("field"))
    return ""


def _duration(value: str) -> float | None:
    """Seconds of a protobuf Duration in JSON (`"13s"`, `"58.934310785s"`); None when not one."""
    match = _DURATION.fullmatch(value) if value else None
    return float(match[1]) if match else None


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""
