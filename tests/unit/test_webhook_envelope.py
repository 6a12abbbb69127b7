"""The envelope a webhook event carries, rendered by the server from the domain job: the same
keys and order as the bridge's envelope of the job paths, the result left out (its URLs are
the bridge's); and which endpoint, if any, an ended job's event goes to."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from grpc_server.config import WebhookEndpoint
from grpc_server.domain.jobs import Job, JobError, JobStatus
from grpc_server.webhooks.envelope import job_envelope
from grpc_server.webhooks.outbox import EndpointPlan
from tests.store.test_store_contract import _job, _result

ENDED = datetime(2026, 12, 4, 16, 4, 1, 123000, tzinfo=UTC)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _failed(webhook: str | None = "orders") -> Job:
    error = JobError(502, "provider failed", type="api_error", code="upstream", event_id="ev1")
    job = _job()
    return replace(
        job,
        status=JobStatus.FAILED,
        status_code=502,
        error=error,
        completed_at=ENDED,
        expires_at=ENDED + timedelta(seconds=60),
        attempts=2,
        labels={"b": "2", "a": "1"},
        webhook=webhook,
    )


def test_a_failed_job_renders_the_bridge_keys_in_order() -> None:
    job = _failed()
    body = job_envelope(job)
    assert list(body) == [
        "id",
        "status",
        "expires_at",
        "created_at",
        "completed_at",
        "status_code",
        "error",
        "request_type",
        "attempt",
        "labels",
        "webhook",
    ]
    assert body["completed_at"] == "2026-12-04T16:04:01.123Z" and body["status"] == "failed"
    assert body["error"]["error"] == {
        "type": "api_error",
        "message": "provider failed",
        "code": "upstream",
        "event_id": "ev1",
    }
    assert body["error"]["is_bifrost_error"] is False and body["labels"] == {"a": "1", "b": "2"}


def test_a_completed_job_leaves_its_result_to_the_result_path() -> None:
    job = replace(
        _job(), status=JobStatus.COMPLETED, status_code=200, result=_result(_job(), 1), completed_at=ENDED
    )
    body = job_envelope(job)
    assert body["result_omitted"] is True and "result" not in body and "error" not in body


def test_a_job_that_has_not_ended_has_no_event() -> None:
    with pytest.raises(ValueError, match="has not ended"):
        job_envelope(_job())


def test_the_plan_sends_only_what_an_enabled_endpoint_wants() -> None:
    plan = EndpointPlan(
        [
            WebhookEndpoint("orders", "http://127.0.0.1:9/", (SECRET,), events=("async_job.failed",)),
            WebhookEndpoint("off", "http://127.0.0.1:9/", (SECRET,), enabled=False),
        ]
    )
    event = plan(_failed())
    assert event is not None and event.endpoint == "orders" and event.webhook_id.startswith("msg_")
    doc = json.loads(event.body)
    assert doc["type"] == "async_job.failed" and doc["timestamp"] == "2026-12-04T16:04:01.123Z"
    assert doc["data"]["id"] == event.job_id
    assert plan(_failed(None)) is None
    assert plan(_failed("off")) is None
    assert plan(_failed("removed")) is None
    completed = replace(_job(), status=JobStatus.COMPLETED, completed_at=ENDED, webhook="orders")
    assert plan(completed) is None  # wants failures only
