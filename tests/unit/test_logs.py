"""asyncgate/logs.py: JSON lines with context fields, readable text, secrets masked."""

from __future__ import annotations

import argparse
import json
import logging
import sys

import pytest

from asyncgate.logs import (
    LOG_FORMAT_ENV,
    JsonFormatter,
    TextFormatter,
    add_log_format_argument,
    log_context,
    redact,
)

JOB = "3f0c9a4e-8a51-4c1e-9d0b-6c2f1d7e2a10"


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("asyncgate.test", logging.INFO, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_json_line_has_the_event_and_its_context() -> None:
    with log_context(request_id="req-1", key_id="vk-team-a"):
        line = JsonFormatter().format(record("job %s completed", JOB, job_id=JOB, provider="local"))
    doc = json.loads(line)
    assert "\n" not in line
    assert doc["level"] == "INFO"
    assert doc["logger"] == "asyncgate.test"
    assert doc["message"] == f"job {JOB} completed"
    assert doc["time"].endswith("Z") and doc["time"][10] == "T"
    assert (doc["job_id"], doc["provider"]) == (JOB, "local")
    assert (doc["request_id"], doc["key_id"]) == ("req-1", "vk-team-a")


def test_a_message_about_a_job_carries_its_id() -> None:
    doc = json.loads(JsonFormatter().format(record("job %s completed by %s", JOB, "local/pillow")))
    assert doc["job_id"] == JOB
    assert "job_id" not in json.loads(JsonFormatter().format(record("jobs: %d", 3)))


def test_context_ends_with_its_block() -> None:
    with log_context(job_id=JOB):
        pass
    assert "job_id" not in json.loads(JsonFormatter().format(record("after")))


def test_access_log_record_becomes_method_path_status_duration_and_job() -> None:
    access = record(
        "x",
        first_request_line=f"GET /v1/async/files/{JOB}/0?token=c2VjcmV0LXRva2Vu HTTP/1.1",
        response_status=200,
        request_time_micro=1500,
    )
    doc = json.loads(JsonFormatter().format(access))
    assert doc["method"] == "GET"
    assert doc["path"] == f"/v1/async/files/{JOB}/0?token=[redacted]"
    assert (doc["status"], doc["duration_ms"], doc["job_id"]) == (200, 1.5, JOB)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("presented sk-bf-team-a-secret", "sk-bf-team-a-secret"),
        ("Authorization: Bearer abc.def-123", "abc.def-123"),
        ("GET /x?token=c2VjcmV0&y=1", "c2VjcmV0"),
        ("provider key sk-proj-AbC123", "sk-proj-AbC123"),
    ],
)
def test_secrets_are_masked_in_messages_context_and_tracebacks(text: str, secret: str) -> None:
    assert secret not in redact(text)
    try:
        raise ValueError(text)
    except ValueError:
        rec = record("failed: %s", text, path=text)
        rec.exc_info = sys.exc_info()
    for formatter in (JsonFormatter(), TextFormatter()):
        assert secret not in formatter.format(rec)


def test_text_line_is_readable_with_context_after_the_message() -> None:
    line = TextFormatter().format(record("job done", job_id=JOB, duration_ms=12.5))
    assert line.endswith(f"INFO asyncgate.test: job done job_id={JOB} duration_ms=12.5")


def test_log_format_flag_and_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_log_format_argument(parser)
    assert parser.parse_args([]).log_format == "text"
    assert parser.parse_args(["--log-format", "json"]).log_format == "json"
    monkeypatch.setenv(LOG_FORMAT_ENV, "JSON")
    parser = argparse.ArgumentParser()
    add_log_format_argument(parser)
    assert parser.parse_args([]).log_format == "json"
    monkeypatch.setenv(LOG_FORMAT_ENV, "xml")
    with pytest.raises(SystemExit):
        add_log_format_argument(argparse.ArgumentParser())
    assert f"{LOG_FORMAT_ENV}: must be one of text, json, got 'xml'" in capsys.readouterr().err
