"""Which configured endpoint a job names, and whether it wants an event."""

from __future__ import annotations

from collections.abc import Iterable

from grpc_server.config import WebhookEndpoint


class UnknownWebhook(ValueError):
    """A job names an endpoint that is not configured or is disabled (a 400 at submit)."""


def endpoint_named(endpoints: Iterable[WebhookEndpoint], name: str) -> WebhookEndpoint:
    """The enabled endpoint called `name`; UnknownWebhook, its message fit for the caller,
    otherwise (the configured names are not listed: they are the operator's business)."""
    for endpoint in endpoints:
        if endpoint.name == name:
            if not endpoint.enabled:
                raise UnknownWebhook(f"webhook endpoint {name!r} is disabled")
            return endpoint
    raise UnknownWebhook(f"no webhook endpoint is named {name!r}")


def wants(endpoint: WebhookEndpoint, event_type: str) -> bool:
    """Whether the endpoint asked for this event type (and is enabled)."""
    return endpoint.enabled and event_type in endpoint.events
