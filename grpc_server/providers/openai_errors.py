"""OpenAI's error answers, classified (OpenAI, compatible servers and Azure OpenAI alike):
OpenAI's `{"error": {message, type, code, param}}`, Azure's same shape with `innererror`
(the content filter's verdict, kept in details), `{"error": "text"}`, or API Management's
`{"statusCode", "message"}`; retryable per retryable_status, with the `retry-after-ms`
or `Retry-After` hint. Every text field passes through the redactor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from grpc_server.providers.base import ProviderError, parse_retry_after, retryable_status
from grpc_server.providers.http_errors import body_prefix


def classify_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    redact: Callable[[str], str],
    *,
    default_type: str = "",
) -> ProviderError:
    """A non-2xx answer, classified; every text field passes through `redact`."""
    parsed = parse_error_body(body)
    return ProviderError(
        message=redact(parsed.message or body_prefix(body, status)),
        status_code=status,
        type=redact(parsed.type) or default_type,
        code=redact(parsed.code),
        param=redact(parsed.param),
        retryable=retryable_status(status),
        retry_after=retry_after(headers),
        details=parsed.details,
    )


@dataclass(frozen=True)
class ParsedError:
    """The fields of an error body; empty where absent."""

    message: str = ""
    type: str = ""
    code: str = ""
    param: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def parse_error_body(body: bytes) -> ParsedError:
    """`{"error": {message, type?, code?, param?, innererror?}}` (OpenAI's, and Azure's with
    innererror), `{"error": "text"}`, or API Management's `{"statusCode", "message"}`."""
    try:
        doc: Any = json.loads(body)
    except ValueError:
        return ParsedError()
    if not isinstance(doc, dict):
        return ParsedError()
    error = doc.get("error")
    if isinstance(error, str):
        return ParsedError(message=error)
    if not isinstance(error, dict):
        return ParsedError(message=_str_or_none(doc.get("message")) or "", code=_code(doc.get("statusCode")))
    inner = error.get("innererror")
    return ParsedError(
        message=_str_or_none(error.get("message")) or "",
        type=_str_or_none(error.get("type")) or "",
        # Azure sends "404", "DeploymentNotFound"; some servers a number: always kept as text.
        code=_code(error.get("code")),
        param=_str_or_none(error.get("param")) or "",
        # Azure's content filter verdict (which category tripped) is worth keeping.
        details={"innererror": inner} if isinstance(inner, dict) else {},
    )


def retry_after(headers: Mapping[str, str]) -> float | None:
    # OpenAI's SDK (which Azure's clients share) prefers the millisecond header.
    ms = parse_retry_after(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000
    return parse_retry_after(headers.get("retry-after"))


def _code(value: object) -> str:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
