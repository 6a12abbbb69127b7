"""Logging for the three entry points: readable text for a terminal (the default) or JSON
lines for a log collector (`--log-format json`, or ASYNCGATE_LOG_FORMAT=json).

A JSON line is one event: `time` (RFC 3339, UTC, milliseconds), `level`, `logger`,
`message`, then whichever context fields are known:

    job_id, request_id, key_id, provider, model, operation, method, path, status,
    duration_ms, event_id

They come from `extra=` on the logging call (`log.info("...", extra={"job_id": id})`), from
`log_context(...)` around a piece of work (a contextvar, so every line logged inside it
carries them), for aiohttp's access log from the request it describes (the job id from a
poll or file path), and for a message that starts "job <id>" from that id.

Secrets never reach a line: a message is written through `redact`, which masks virtual
and provider keys (`sk-...`), bearer tokens and the `token=` capability of result URLs.
Only the standard library is used.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

LOG_FORMATS = ("text", "json")
LOG_FORMAT_ENV = "ASYNCGATE_LOG_FORMAT"
"""Environment variable read when --log-format is not given."""

CONTEXT_FIELDS = (
    "job_id",
    "request_id",
    "key_id",
    "provider",
    "model",
    "operation",
    "method",
    "path",
    "status",
    "duration_ms",
    "event_id",
)
"""Context a line may carry, in the order JSON lines and text lines show them."""

ACCESS_LOG_FORMAT = '%a "%r" %s %b %D'
"""An aiohttp access log format whose fields become method, path, status and duration_ms
(pass it as `access_log_format=` to the runner)."""

_context: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar("asyncgate_log_context")

_SECRETS = (
    (re.compile(r"\bsk-[A-Za-z0-9][A-Za-z0-9_\-.]*"), "sk-[redacted]"),
    (re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+"), r"\1[redacted]"),
    (re.compile(r"([?&]token=)[^&\s\"']+"), r"\1[redacted]"),
)
_MESSAGE_JOB = re.compile(r"job ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b")
"""The dispatcher's lines start "job <id> ...": their job, until they pass it with extra=."""
_JOB_PATH = re.compile(
    r"/v1/async/(?:[a-z_/]+?)/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?=[/?\s]|$)"
)


def redact(text: str) -> str:
    """`text` with key values, bearer tokens and URL tokens masked."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Every line logged inside (in this task and the tasks it starts) carries `fields`."""
    token = _context.set({**_context.get({}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def _access_fields(record: logging.LogRecord) -> dict[str, object]:
    """What aiohttp's access log record says about its request (its `extra=` keys)."""
    fields: dict[str, object] = {}
    line = getattr(record, "first_request_line", None)
    if isinstance(line, str) and line.count(" ") >= 1:
        method, _, rest = line.partition(" ")
        path = rest.rsplit(" ", 1)[0] if rest.count(" ") else rest
        fields["method"], fields["path"] = method, redact(path)
        if match := _JOB_PATH.match(path):
            fields["job_id"] = match.group(1)
    status = getattr(record, "response_status", None)
    if isinstance(status, int):
        fields["status"] = status
    micros = getattr(record, "request_time_micro", None)
    if isinstance(micros, int):
        fields["duration_ms"] = round(micros / 1000, 3)
    return fields


def context_fields(record: logging.LogRecord) -> dict[str, object]:
    """The record's context: the contextvar's, then aiohttp's access fields, then `extra=`."""
    found: dict[str, object] = {**_context.get({}), **_access_fields(record)}
    if isinstance(record.msg, str) and (match := _MESSAGE_JOB.match(record.getMessage())):
        found.setdefault("job_id", match.group(1))
    for name in CONTEXT_FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            found[name] = value
    return {
        name: redact(value) if isinstance(value, str) else value
        for name in CONTEXT_FIELDS
        if (value := found.get(name)) is not None and value != ""
    }


def _json_value(value: object) -> Any:
    return value if isinstance(value, (str, int, float, bool)) else str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        doc: dict[str, Any] = {
            "time": stamp.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        doc.update((k, _json_value(v)) for k, v in context_fields(record).items())
        if record.exc_info:
            doc["exception"] = redact(self.formatException(record.exc_info))
        elif record.stack_info:
            doc["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(doc, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value ...`, for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = redact(super().format(record))
        context = " ".join(f"{k}={v}" for k, v in context_fields(record).items())
        if not context:
            return line
        head, newline, tail = line.partition("\n")  # after the message, before a traceback
        return f"{head} {context}{newline}{tail}"


def formatter(log_format: str) -> logging.Formatter:
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """Send every logger's lines to stderr in `log_format` (replacing earlier handlers)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def add_log_format_argument(parser: argparse.ArgumentParser) -> None:
    """--log-format; its default is $ASYNCGATE_LOG_FORMAT (a usage error if that is neither)."""
    default = os.environ.get(LOG_FORMAT_ENV, "").strip().lower() or "text"
    if default not in LOG_FORMATS:
        parser.error(f"{LOG_FORMAT_ENV}: must be one of {', '.join(LOG_FORMATS)}, got {default!r}")
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=default,
        help=f"text for a terminal, json for one JSON object per line (default text, or ${LOG_FORMAT_ENV})",
    )
