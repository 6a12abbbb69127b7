"""Finding the endpoint a job names, and the events it wants."""

from __future__ import annotations

import base64

import pytest

from grpc_server.config import WebhookEndpoint
from grpc_server.webhooks.endpoints import UnknownWebhook, endpoint_named, wants

SECRET = "whsec_" + base64.b64encode(b"e" * 32).decode()
ORDERS = WebhookEndpoint(name="orders", url="https://a.example/in", secrets=(SECRET,))
FAILURES = WebhookEndpoint(
    name="failures", url="https://b.example/in", secrets=(SECRET,), events=("async_job.failed",)
)
OFF = WebhookEndpoint(name="off", url="https://c.example/in", secrets=(SECRET,), enabled=False)
ALL = (ORDERS, FAILURES, OFF)


def test_an_enabled_endpoint_is_found_by_name() -> None:
    assert endpoint_named(ALL, "failures") is FAILURES


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("off", "webhook endpoint 'off' is disabled"),
        ("nope", "no webhook endpoint is named 'nope'"),
        ("", "no webhook endpoint is named ''"),
    ],
)
def test_an_unknown_or_disabled_name_is_refused(name: str, message: str) -> None:
    with pytest.raises(UnknownWebhook) as caught:
        endpoint_named(ALL, name)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("endpoint", "event", "wanted"),
    [
        (ORDERS, "async_job.completed", True),
        (ORDERS, "async_job.cancelled", True),
        (FAILURES, "async_job.failed", True),
        (FAILURES, "async_job.completed", False),
        (OFF, "async_job.completed", False),
    ],
)
def test_an_endpoint_wants_the_events_it_names_while_enabled(
    endpoint: WebhookEndpoint, event: str, wanted: bool
) -> None:
    assert wants(endpoint, event) is wanted
